"""The plan: rules from a `Diagnosis` to a `Recipe` of existing stages, and its TOML text.

The plan is an ordinary recipe, so it is validated, run and recorded like any other and
`sdenhance run --from` reproduces it: every value a stage would otherwise estimate at run
time (a deblur's PSF, a denoise strength) is written into the step's options.

Offline (no diffusion model, or asked for) the plan uses only stages that need none. Each of
its pre-processing steps was kept only where `bench/enhance.py` measured it to beat
Real-ESRGAN alone on the clean ground truth (RESULTS.md, "enhance"); `OFFLINE` holds those
measured decisions. With a diffusion model the content picks the preset (portrait, text,
anime, old-photo, unblur, midjourney-art, general) and faces get a gentle `facefix`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sdenhance.ops.diagnose import Diagnosis
from sdenhance.recipes import Recipe, Step

PORTRAIT_FACE = 0.15  # largest face side / short image side from which a photo is a portrait


@dataclass(frozen=True)
class Rules:
    """Which pre-processing steps an offline plan may add, and from which measured level.

    `denoise_from` / `deblur_from`: the noise σ (of 255) / blur σ (px) from which the step is
    added; None never adds it. `deblur_kinds`: the PSF kinds deblurred. `anime_upscaler`: use
    the anime Real-ESRGAN for illustrations.
    """

    denoise_from: float | None = None
    deblur_from: float | None = None
    deblur_kinds: tuple[str, ...] = ("gaussian", "motion")
    anime_upscaler: bool = True


# measured on bench/enhance.py (RESULTS.md, "enhance"): before Real-ESRGAN ×4, deblurring a
# defocused input gains about 0.9 dB but a motion-blurred one loses 0.5 dB (its PSF is read
# less surely on a small image); denoising loses 0.2-7 dB (Real-ESRGAN removes noise itself and
# nlmeans takes detail with it); the anime model loses PSNR on flat-colour art (though SSIM and
# dE2000 improve), so PSNR keeps x4plus
OFFLINE = Rules(
    denoise_from=None, deblur_from=1.2, deblur_kinds=("gaussian",), anime_upscaler=False
)
# at the image's own size (no upscale after it), measured against the input: deblurring gains
# 3-4 dB; denoising gains 2.4 dB at σ 10 and 5 dB at σ 20 but can lose 0.6 dB at σ 5
SAME_SIZE = Rules(denoise_from=6.0, deblur_from=1.2, anime_upscaler=True)


def target_size(size: tuple[int, int], target: int) -> tuple[int, int] | None:
    """(width, height) with the long side at `target`, or None when it is already that long."""
    w, h = size
    if max(w, h) >= target:
        return None
    s = target / max(w, h)
    return (
        (target, max(1, math.floor(h * s + 0.5)))
        if w >= h
        else (max(1, math.floor(w * s + 0.5)), target)
    )


def denoise_strength(sigma: float) -> float:
    """nlmeans strength for white noise of `sigma` levels: OpenCV's h ≈ σ, h = 20 × strength."""
    return round(min(1.0, max(0.05, sigma / 20.0)), 3)


def plan(
    diagnosis: Diagnosis,
    *,
    target: int = 2048,
    diffusion: bool = False,
    prompt: str | None = None,
    rules: Rules | None = None,
    psf: Any = None,
) -> Recipe:
    """The recipe that treats `diagnosis`, as steps of existing stages with their options.

    Parameters
    ----------
    diagnosis : Diagnosis
    target : int
        Long side of the output, px (no upscale when the image is already that long).
    diffusion : bool
        A diffusion model is available and wanted: use the generative presets.
    prompt : str or None
        The input's own prompt (generation metadata), put before the preset's words.
    rules : Rules or None
        The offline pre-processing rules; None: `OFFLINE` when the image is enlarged,
        `SAME_SIZE` when it already has the target size.
    psf : ops.deblur.Psf or None
        The blur's PSF when a deblur step may be added (estimated by the caller).
    """
    d = diagnosis
    steps: list[Step] = []
    why: list[str] = []
    size = target_size(d.size, target)
    if rules is None:
        rules = OFFLINE if size is not None else SAME_SIZE
    noise, blur = d["noise"], d["blur"]

    # 1. Clean before enlarging: noise, then blur
    if noise.present and (diffusion or _at_least(noise.value, rules.denoise_from)):
        steps.append(
            Step("denoise", {"strength": denoise_strength(noise.value), "method": "nlmeans"})
        )
        why.append(f"noise σ {noise.value:.1f}")
    if blur.present and psf is not None and (diffusion or _deblurs(rules, blur.value, psf)):
        steps.append(Step("deblur", psf_options(psf)))
        why.append(f"blur σ {blur.value:.2f} px ({psf.kind})")

    # 2. Enlarge to the target
    if size is not None:
        if diffusion:
            preset, reason = _preset(d)
            options: dict[str, Any] = {"width": size[0], "height": size[1]}
            if prompt:
                from sdenhance.presets import join_prompts, load_preset

                options["prompt"] = join_prompts(prompt, load_preset(preset).prompt)
            steps.append(Step("upscale", options, preset))
            why.append(f"{reason} → preset {preset}")
        else:
            art = d.present("illustration") and rules.anime_upscaler
            upscaler = "realesrgan-x4plus-anime" if art else "realesrgan-x4plus"
            steps.append(
                Step("resize", {"width": size[0], "height": size[1], "upscaler": upscaler})
            )
            why.append(f"{d['size'].value:.2f}× to {target} px with {upscaler}")

    # 3. After the upscale: faces, and an old print's tones
    if diffusion and _portrait(d):
        steps.append(Step("facefix", {}, "portrait"))
        why.append("faces → facefix")
    if diffusion and d.present("old_photo") and size is not None:
        steps.append(Step("colorfix", {"method": "hist", "strength": 0.8}))
        why.append("old photo → histogram colour fix")
    if not steps:
        steps.append(Step("resize", {"scale": 1.0}))
        why.append("nothing to do")
    mode = "diffusion" if diffusion else "offline"
    return Recipe(name="enhance", steps=tuple(steps), description=f"{mode}: " + "; ".join(why))


def _deblurs(rules: Rules, sigma: float | None, psf: Any) -> bool:
    return _at_least(sigma, rules.deblur_from) and psf.kind in rules.deblur_kinds


def _at_least(value: float | None, floor: float | None) -> bool:
    return value is not None and floor is not None and value >= floor


def psf_options(psf: Any) -> dict[str, Any]:
    """A `deblur` step's options for an estimated PSF (rounded: they are shown and recorded)."""
    if psf.kind == "motion":
        return {
            "psf": "motion",
            "length": round(float(psf.length), 2),
            "angle": round(float(psf.angle), 1),
        }
    return {"psf": "gaussian", "sigma": round(float(psf.sigma), 3)}


def _portrait(d: Diagnosis) -> bool:
    faces = d["faces"]
    return faces.present and faces.detail.get("largest", 0.0) >= PORTRAIT_FACE


def _preset(d: Diagnosis) -> tuple[str, str]:
    """The preset for the content, most specific first."""
    if d.present("text"):
        return "text", "text"
    if d.present("illustration"):
        return "anime", "illustration"
    if _portrait(d):
        return "portrait", "portrait"
    if d.present("old_photo"):
        return "old-photo", "old photo"
    if d.present("blur"):
        return "unblur", "blurred"
    if d.present("ai_generated"):
        return "midjourney-art", "AI-generated"
    return "general", "photo"


# --- TOML -------------------------------------------------------------------------------------


def recipe_toml(recipe: Recipe) -> str:
    """The recipe as the TOML of `pipelines/*.toml` (loadable by `sdenhance run`)."""
    lines = [f"name = {_toml(recipe.name)}"]
    if recipe.description:
        lines.append(f"description = {_toml(recipe.description)}")
    for step in recipe.steps:
        lines += ["", "[[steps]]", f"stage = {_toml(step.stage)}"]
        if step.preset:
            lines.append(f"preset = {_toml(step.preset)}")
        if step.options:
            inner = ", ".join(f"{k} = {_toml(v)}" for k, v in step.options.items())
            lines.append(f"options = {{ {inner} }}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"TOML has no {value}")
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's basic-string escapes for everything json.dumps emits here
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise ValueError(f"cannot write {type(value).__name__} as TOML")
