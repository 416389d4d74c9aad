"""Blend: mix the processed image with the original at an opacity.

Diffusion at high strength smooths skin and textures into a "plastic" look; laying the result
over the original (resampled to the result's size with Lanczos) at `opacity` < 1 brings back
the original's grain and texture while keeping most of the new detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdenhance.errors import SdenhanceError
from sdenhance.options import option

if TYPE_CHECKING:
    from PIL import Image

    from sdenhance.stages import Context


@dataclass(frozen=True)
class Options:
    opacity: float = option(
        0.75,
        "Share of the processed image in the mix, 0 (original only) to 1 (processed only).",
        ge=0.0,
        le=1.0,
    )


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """``opacity · image + (1 − opacity) · original``, the original resampled to fit."""
    original = ctx.images.get("original")
    if original is None:
        raise SdenhanceError("blend needs the original image (`original`)")
    if opts.opacity == 1.0:
        return image

    import numpy as np

    from sdenhance.io.convert import from_array, to_array
    from sdenhance.ops.resize import resize

    base = to_array(original.convert("RGB"))
    if original.size != image.size:
        base = np.clip(resize(base, image.size, "lanczos"), 0.0, 1.0)  # no Lanczos overshoot
    mixed = opts.opacity * to_array(image.convert("RGB")) + (1.0 - opts.opacity) * base
    return from_array(mixed)
