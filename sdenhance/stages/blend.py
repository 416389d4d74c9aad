"""Blend: mix the processed image with the original at an opacity.

Diffusion at high strength smooths skin and textures into a "plastic" look; laying the result
over the original (resampled to the result's size with Lanczos) at `opacity` < 1 brings back
the original's grain and texture while keeping most of the new detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdenhance.errors import SdenhanceError
from sdenhance.options import option

if TYPE_CHECKING:
    import numpy as np
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

    from sdenhance.io.convert import from_array, to_array

    refs = {"original": to_array(original.convert("RGB"))}
    return from_array(run_array(to_array(image.convert("RGB")), opts, refs))


ROLES = ("original",)


def run_array(image: np.ndarray, opts: Options, refs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The blend on float pixels (H, W, 3) in [0, 1] over `refs["original"]` (any size).
    Pure arithmetic: 16-bit inputs stay 16-bit."""
    base = refs.get("original")
    if base is None:
        raise SdenhanceError("blend needs the original image (`original`)")
    if opts.opacity == 1.0:
        return image

    import numpy as np

    from sdenhance.ops.resize import resize

    height, width = image.shape[:2]
    if base.shape[:2] != (height, width):
        base = np.clip(resize(base, (width, height), "lanczos"), 0.0, 1.0)  # no overshoot
    return opts.opacity * image + (1.0 - opts.opacity) * base
