"""Object removal: fill the masked object offline from its surroundings, then optionally refine.

The fill is OpenCV's Telea (fast marching) or Navier-Stokes inpainting, so removal works with no
model at all. Refinement repaints the fill at low strength with the inpaint stage to give it
texture, and is blended back with a ramp that ends at the mask's edge. Either way every pixel
outside the grown mask is bit-identical to the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.ops.crops import composite_exact
from sdenhance.ops.masks import check_mask, feather, grow, mask_from_image
from sdenhance.options import option

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


@dataclass(frozen=True)
class Options:
    method: str = option(
        "telea",
        "Offline fill: telea (fast marching, smooth) or ns (Navier-Stokes, follows edges in).",
        choices=tuple(METHODS),
    )
    radius: int = option(
        5, "Neighbourhood in px each filled pixel is estimated from, 1–64.", ge=1, le=64
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
        """Refinement settings are checked against the inpaint stage before any image loads."""
        if self.refine:
            inpaint_options(self)


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
        },
        where="remove (refine)",
    )


def fill_region(rgb: np.ndarray, region: np.ndarray, *, method: str, radius: int) -> np.ndarray:
    """Offline fill of `region` from its surroundings; other pixels are returned untouched.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    region : ndarray of shape (H, W), float
        1 = fill; must leave some pixel unselected to fill from.
    method : "telea" or "ns"
    radius : int
        Inpainting neighbourhood in pixels.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8, bit-identical to `rgb` where region == 0
    """
    selected = region > 0
    filled = cv2.inpaint(
        np.ascontiguousarray(rgb), selected.astype(np.uint8) * 255, float(radius), METHODS[method]
    )
    return composite_exact(rgb, filled, selected.astype(np.float32))


def run(image: Image.Image, opts: Options, ctx: Any) -> Image.Image:
    """Remove the object under `ctx.images["mask"]` (white = object) from an RGB image."""
    # 1. Check inputs
    mask_img = ctx.images.get("mask")
    if mask_img is None:
        raise SdenhanceError("remove needs a mask: white (or transparent, with `alpha`) = object")
    mask = check_mask(mask_from_image(mask_img), image.size, resize=opts.mask_resize)
    refine = inpaint_options(opts) if opts.refine else None

    # 2. Take the object's halo with it
    region = grow(mask, opts.grow)
    if np.all(region > 0):
        raise SdenhanceError(
            f"the mask grown by `grow`={opts.grow} px covers the whole image, so nothing is left "
            "to fill from; use a smaller --grow or a smaller mask"
        )

    # 3. Offline fill
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    ctx.progress("remove", 0, 2 if refine else 1)
    filled = fill_region(rgb, region, method=opts.method, radius=opts.radius)
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
