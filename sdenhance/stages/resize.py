"""Resize: change the size by a factor or to a width/height, with any registered upscaler.

A recipe step for when no diffusion is wanted: a plain Lanczos resize (the default), or a
Real-ESRGAN enlargement before later steps. Shrinking always resamples with Lanczos, which in
PIL widens its filter with the reduction, so it averages like an area filter (no aliasing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdenhance.io.limits import check_output_size
from sdenhance.ops import sizes
from sdenhance.options import MAX_SIDE, option
from sdenhance.upscalers.registry import upscaler_names
from sdenhance.upscalers.upscale import upscale

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from sdenhance.stages import Context


@dataclass(frozen=True)
class Options:
    scale: float = option(
        2.0,
        "Size factor, > 0 and ≤ 64 (< 1 shrinks); ignored when `width` or `height` is set.",
        gt=0.0,
        le=64.0,
    )
    width: int | None = option(
        None,
        "Output width in px, ≥ 1; alone, the height follows the aspect ratio.",
        ge=1,
        le=MAX_SIDE,
    )
    height: int | None = option(
        None,
        "Output height in px, ≥ 1; alone, the width follows the aspect ratio.",
        ge=1,
        le=MAX_SIDE,
    )
    upscaler: str = option(
        "lanczos",
        "How to enlarge: lanczos, bicubic or a bundled Real-ESRGAN model.",
        choices=upscaler_names(),
    )

    def check(self) -> None:
        if self.width is not None and self.height is not None:
            check_output_size((self.width, self.height))  # known now: refused before any work


def target_size(size: tuple[int, int], opts: Options) -> tuple[int, int]:
    """Output (width, height): `width`/`height` when given (one alone keeps the aspect), else
    the input times `scale` (`ops.sizes.target_size`: halves round up, at least 1 px)."""
    return sizes.target_size(size, scale=opts.scale, width=opts.width, height=opts.height)


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """`image` at `target_size`, enlarged by `upscaler` and shrunk with Lanczos."""
    size = target_size(image.size, opts)
    if size == image.size:
        return image.copy()
    return upscale(
        image,
        size=size,
        upscaler=opts.upscaler,
        progress=ctx.progress,
        allow_pickle=ctx.allow_pickle,
    )


ROLES: tuple[str, ...] = ()


def run_array(image: np.ndarray, opts: Options, refs: Mapping[str, np.ndarray]) -> np.ndarray:
    """A Lanczos or bicubic resize of float pixels (H, W, C), no 8-bit rounding in between;
    clipped to [0, 1] (resampling overshoots at edges). Other upscalers are not colour maths."""
    import numpy as np

    from sdenhance.ops.resize import resize

    if opts.upscaler not in PURE_UPSCALERS:
        raise ValueError(f"`{opts.upscaler}` is not a pure resample; use run()")
    height, width = image.shape[:2]
    size = target_size((width, height), opts)
    if size == (width, height):
        return image.copy()
    shrink = size[0] < width or size[1] < height
    return np.clip(resize(image, size, "lanczos" if shrink else opts.upscaler), 0.0, 1.0)


PURE_UPSCALERS = ("lanczos", "bicubic")
