"""`enhance`: diagnose an image, decide its treatment, run it as a recipe.

The order matters to users: the diagnosis and the plan are complete (and shown) before any
model loads, so `--dry-run` costs a fraction of a second per image and a surprising plan can be
stopped. The plan runs through `run_recipe` like any recipe, and the output's metadata records
the diagnosis and the steps that ran, so `sdenhance run --from` reproduces it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from sdenhance.enhance.plan import plan
from sdenhance.ops.diagnose import Diagnosis, diagnose
from sdenhance.recipes import Recipe, run_recipe

if TYPE_CHECKING:
    from sdenhance.models.config import EngineConfig
    from sdenhance.stages import Context

DEFAULT_TARGET = 2048
FACE_SIDE = 320  # px: the copy faces are looked for in
FACE_SCORE = 6.0  # LBP hits in one scan that make a face (the detector's own floor is 4)


def find_faces(rgb: np.ndarray) -> list:
    """Faces for the diagnosis, with the offline LBP detector: one scan of a copy of at most
    `FACE_SIDE` px (faces that change the plan are large; this keeps the diagnosis fast),
    white-balanced first (grey-edge gains) so a colour cast does not fail the detector's skin
    test, and at least `FACE_SCORE` hits, a cut measured on `bench/enhance.py`."""
    from sdenhance.detectors.faces import LbpFaceDetector, detect_faces
    from sdenhance.ops import image_stats as st
    from sdenhance.ops.faces import Face

    small = st.work_copy(rgb, FACE_SIDE)
    balanced = np.clip(small * st.grey_edge_gains(small), 0, 255).astype(np.uint8)
    found = detect_faces(
        balanced, detector=LbpFaceDetector(passes=1), max_side=FACE_SIDE, min_score=FACE_SCORE
    )
    sx, sy = rgb.shape[1] / small.shape[1], rgb.shape[0] / small.shape[0]
    h, w = rgb.shape[:2]
    return [
        Face(
            int(f.x0 * sx),
            int(f.y0 * sy),
            min(w, round(f.x1 * sx)),
            min(h, round(f.y1 * sy)),
            f.score,
        )
        for f in found
    ]


def diagnose_image(
    image: Image.Image | np.ndarray, *, target: int = DEFAULT_TARGET, metadata: Any = None
) -> Diagnosis:
    """`ops.diagnose.diagnose` with faces found and the time of both measured."""
    start = time.perf_counter()
    rgb = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else np.asarray(image)
    found = diagnose(rgb, target=target, faces=find_faces(rgb), metadata=metadata)
    return replace(found, seconds=time.perf_counter() - start)


def diffusion_available(config: EngineConfig | None) -> tuple[bool, str]:
    """Whether the base model and its tile ControlNet are on this machine, without loading or
    downloading anything; the reason when not (shown with an offline plan)."""
    from sdenhance.errors import SdenhanceError
    from sdenhance.models.config import DEFAULTS, EngineConfig, user_defaults
    from sdenhance.models.resolve import resolve

    config = config or EngineConfig()
    spec = config.model or os.environ.get("SDENHANCE_MODEL") or user_defaults().get("model")
    try:
        model = _local(spec or DEFAULTS["sd15"]["model"], "pipeline", config.allow_pickle, resolve)
        control = (
            config.controlnet
            or os.environ.get("SDENHANCE_CONTROLNET")
            or user_defaults().get("controlnet")
        )
        _local(
            control or DEFAULTS[model.family]["controlnet"],
            "controlnet",
            config.allow_pickle,
            resolve,
        )
    except SdenhanceError as exc:
        return False, str(exc)
    return True, ""


def _local(spec: str, role: str, allow_pickle: bool, resolve: Any) -> Any:
    """`resolve`, but a hub id only when it is already in the local cache (never a download)."""
    from sdenhance.errors import SdenhanceError
    from sdenhance.models.resolve import hub_cache_dir

    if not os.path.exists(os.path.expanduser(spec)):
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(spec, local_files_only=True, cache_dir=hub_cache_dir())
        except Exception:  # noqa: BLE001 - whatever the reason, it is not on this machine
            raise SdenhanceError(f"{role} `{spec}` is not on this machine") from None
    return resolve(spec, role=role, allow_pickle=allow_pickle)


@dataclass(frozen=True)
class Plan:
    """What `enhance` decided for one image: the diagnosis, the recipe and why that mode."""

    diagnosis: Diagnosis
    recipe: Recipe
    mode: str  # "offline" or "diffusion"
    reason: str = ""  # why offline, when it is

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape: diagnosis findings, then the plan's steps."""
        return {
            "diagnosis": self.diagnosis.to_dict(),
            "plan": [
                {
                    "stage": s.stage,
                    **({"preset": s.preset} if s.preset else {}),
                    "options": dict(s.options),
                }
                for s in self.recipe.steps
            ],
            "mode": self.mode,
        }


def make_plan(
    image: Image.Image,
    *,
    target: int = DEFAULT_TARGET,
    offline: bool = False,
    engine_config: EngineConfig | None = None,
    metadata: Any = None,
) -> Plan:
    """Diagnose `image` and plan its treatment; nothing loads. Offline when asked, or when no
    diffusion model is on this machine."""
    from sdenhance.ops.deblur import estimate_psf

    diagnosis = diagnose_image(image, target=target, metadata=metadata)
    reason = "--offline" if offline else ""
    if not offline:
        available, why = diffusion_available(engine_config)
        if not available:
            offline, reason = True, why
    psf = estimate_psf(np.asarray(image.convert("RGB"))) if diagnosis.present("blur") else None
    prompt = (
        diagnosis["ai_generated"].detail.get("prompt")
        if diagnosis.present("ai_generated")
        else None
    )
    recipe = plan(diagnosis, target=target, diffusion=not offline, prompt=prompt, psf=psf)
    recipe.validate()  # every step checked before anything runs
    return Plan(diagnosis, recipe, "offline" if offline else "diffusion", reason)


def run_plan(image: Image.Image, the_plan: Plan, ctx: Context) -> Image.Image:
    """Run the plan's recipe on `image`; the diagnosis and plan go into the output's record."""
    ctx.record["enhance"] = {
        "diagnosis": the_plan.diagnosis.to_dict(),
        "plan": the_plan.recipe.describe(),
        "mode": the_plan.mode,
    }
    return run_recipe(the_plan.recipe, image, ctx=ctx)
