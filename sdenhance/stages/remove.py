"""Object removal: fill the masked object offline from its surroundings, then optionally refine.

The fill (`ops.fill`) is PatchMatch, which copies the surroundings' texture patch by patch, or
OpenCV's Telea (fast marching) or Navier-Stokes inpainting, which spread smooth colour inward;
removal works with no model at all. Refinement repaints the fill at low strength with the inpaint
stage to give it texture, and is blended back with a ramp that ends at the mask's edge. Either way
every pixel outside the grown mask is bit-identical to the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.ops import fill
from sdenhance.ops.crops import composite_exact
from sdenhance.ops.masks import check_mask, feather, grow, mask_from_image
from sdenhance.options import option
from sdenhance.stages.networks import NetworkOptions
from sdenhance.stages.shared_mask import check_shared_mask

METHODS = fill.METHODS


@dataclass(frozen=True)
class Options(NetworkOptions):
    method: str = option(
        "patchmatch",
        "Offline fill: patchmatch (copies the surroundings' texture in), telea (fast marching, "
        "smooth) or ns (Navier-Stokes, follows edges in).",
        choices=METHODS,
    )
    radius: int | None = option(
        None,
        "telea/ns: neighbourhood in px each filled pixel is estimated from, 1–64 (default 5); "
        f"patchmatch: radius of the compared patches, 1–{fill.MAX_PATCH_RADIUS} (default 3).",
        ge=1,
        le=64,
    )
    grow: int = option(
        8,
        "Grow the mask by this many px before filling, 0–256, to take the object's soft edge, "
        "halo and contact shadow with it.",
        ge=0,
        le=256,
    )
    mask_resize: bool = option(
        False,
        "Stretch a mask of another size to the image (nearest neighbour) instead of refusing it.",
    )
    refine: bool = option(
        True,
        "Repaint the fill at low strength with the inpaint model for real texture (loads a model).",
    )
    refine_strength: float = option(
        0.35,
        "Denoising strength of the refinement, in (0, 1]: higher invents more.",
        gt=0.0,
        le=1.0,
    )
    prompt: str = option(
        "clean background, seamless, natural continuation of the surroundings",
        "What the refined fill should show (the background, not the object).",
    )
    negative_prompt: str = option(
        "object, person, text, watermark, logo, frame, seam, blurry, artifacts",
        "What the refined fill should avoid.",
    )
    steps: int = option(
        30,
        "Sampler steps of the full refinement schedule, 1–500 (only strength×steps run).",
        ge=1,
        le=500,
    )
    guidance: float = option(
        5.0, "Classifier-free guidance of the refinement, 0–30 (1 disables it).", ge=0.0, le=30.0
    )

    def check(self) -> None:
        """The fill and the refinement settings are checked before any image loads."""
        super().check()
        if self.method == "patchmatch" and fill_radius(self) > fill.MAX_PATCH_RADIUS:
            raise SdenhanceError(
                f"`radius` {self.radius} is too large for patchmatch; use 1–"
                f"{fill.MAX_PATCH_RADIUS} (larger patches cost much more time for little gain)"
            )
        if self.method == "patchmatch":
            fill.require_patchmatch()
        if self.refine:
            inpaint_options(self)


# a missing inpainting model has an offline way round: the fill alone
OFFLINE = ("refine", False, "for the offline fill alone")

_REFINE_OPTIONS = ("refine_strength", "prompt", "negative_prompt", "steps", "guidance")


def in_effect(opts: Options) -> tuple[frozenset[str], str] | None:
    """Without `refine` the fill runs alone: the refinement's options do nothing."""
    if opts.refine:
        return None
    kept = {f for f in Options.__dataclass_fields__ if f not in _REFINE_OPTIONS}
    return frozenset(kept), "without refine only the offline fill runs"


def fill_radius(opts: Options) -> int:
    """The radius the fill uses: the option, or the method's default."""
    return opts.radius if opts.radius is not None else fill.DEFAULT_RADIUS[opts.method]


def inpaint_options(opts: Options) -> Any:
    """The inpaint stage's options for the refinement of a fill already in the image."""
    from sdenhance.stages import build_options

    try:
        from sdenhance.stages import get_stage

        get_stage("inpaint")
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("sdenhance.stages"):
            raise
        raise SdenhanceError(
            "`refine` needs the inpaint stage, which this installation lacks; "
            "use --no-refine (refine=False) for the offline fill alone"
        ) from None
    return build_options(
        "inpaint",
        {
            "prompt": opts.prompt,
            "negative_prompt": opts.negative_prompt,
            "strength": opts.refine_strength,
            "steps": opts.steps,
            "guidance": opts.guidance,
            "grow": 0,  # the mask handed over is already grown
            "area": "masked",
            "fill": "original",  # start from the offline fill
            **{  # only those set, so the refinement's own defaults stay in charge otherwise
                k: v
                for k, v in (
                    ("loras", opts.loras),
                    ("embeddings", opts.embeddings),
                    ("clip_skip", opts.clip_skip),
                )
                if v
            },
        },
        where="remove (refine)",
    )


def object_region(mask: np.ndarray, opts: Options) -> np.ndarray:
    """The mask grown by `opts.grow`; refused when it covers everything (nothing to fill from)."""
    region = grow(mask, opts.grow)
    if np.all(region > 0):
        raise SdenhanceError(
            f"the mask grown by `grow`={opts.grow} px covers the whole image, so nothing is left "
            "to fill from; use a smaller --grow or a smaller mask"
        )
    return region


def preflight(opts: Options, ctx: Any) -> None:
    """The mask every input shares (`ctx.images["mask"]`), checked once before a batch: one
    that selects nothing, or everything once grown, is wrong for every input."""
    check_shared_mask(opts, ctx, object_region)


def run(image: Image.Image, opts: Options, ctx: Any) -> Image.Image:
    """Remove the object under `ctx.images["mask"]` (white = object) from an RGB image."""
    # 1. Check inputs
    mask_img = ctx.images.get("mask")
    if mask_img is None:
        raise SdenhanceError("remove needs a mask: white (or transparent, with `alpha`) = object")
    mask = check_mask(mask_from_image(mask_img), image.size, resize=opts.mask_resize)
    refine = inpaint_options(opts) if opts.refine else None

    # 2. Take the object's halo with it
    region = object_region(mask, opts)

    # 3. Offline fill
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    ctx.progress("remove", 0, 2 if refine else 1)
    seed = ctx.resolve_seed() if opts.method == "patchmatch" else 0
    radius = fill_radius(opts)
    filled = fill.fill_region(rgb, region, method=opts.method, radius=radius, seed=seed)
    ctx.progress("remove", 1, 2 if refine else 1)
    if refine is None:
        return Image.fromarray(filled, "RGB")

    # 4. Refine the fill with the inpaint stage, blended in by a ramp inside the region
    from sdenhance.stages import get_stage

    user_mask = ctx.images["mask"]
    ctx.images["mask"] = Image.fromarray((region * 255).astype(np.uint8), "L")
    try:
        refined = get_stage("inpaint").run(Image.fromarray(filled, "RGB"), refine, ctx)
    finally:
        ctx.images["mask"] = user_mask
    refined_u8 = np.asarray(refined.convert("RGB"), dtype=np.uint8)
    if refined_u8.shape != rgb.shape:
        raise RuntimeError(f"inpaint returned size {refined.size}, expected {image.size}")
    inside = 1.0 - feather(1.0 - region, max(opts.grow, 1))
    ctx.progress("remove", 2, 2)
    return Image.fromarray(composite_exact(filled, refined_u8, inside), "RGB")
