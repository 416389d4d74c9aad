"""Colour fix: pull the image's colours back to a reference (by default the run's input).

Diffusion drifts colours; this stage undoes the drift with `sdenhance.ops.color`. The reference is
`ctx.images["reference"]` when given, else `ctx.images["original"]`, so in a multi-step recipe
the fix matches the untouched input rather than the previous step.
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

# kept literal so options can be checked without importing the maths (== ops.color.METHODS,
# the default == ops.color.DEFAULT_METHOD)
METHODS = ("local", "wavelet", "lab", "hist", "adain", "none")


@dataclass(frozen=True)
class Options:
    method: str = option(
        "local",
        "How colours are matched: local (a local colour map fitted to the reference and applied "
        "to every pixel, then its low frequencies; removes drift at every scale, detail kept; "
        "best after an upscale), wavelet (low frequencies from the reference, detail kept), lab "
        "(mean/std in Lab; global casts), hist (histogram matching; strong tonal shifts), adain "
        "(mean/std in RGB; fast), none.",
        choices=METHODS,
    )
    strength: float = option(
        1.0, "How much of the correction is applied, 0 (none) to 1 (full).", ge=0.0, le=1.0
    )


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """Colour-correct `image` against the reference (or the original) with `opts.method`."""
    if opts.method == "none" or opts.strength == 0.0:
        return image
    from sdenhance.io.convert import from_array, to_array

    role = next((r for r in ROLES if ctx.images.get(r) is not None), None)
    refs = {role: to_array(ctx.images[role].convert("RGB"))} if role else {}
    return from_array(run_array(to_array(image.convert("RGB")), opts, refs))


ROLES = ("reference", "original")


def run_array(image: np.ndarray, opts: Options, refs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The colour fix on float pixels (H, W, 3) in [0, 1]; `refs` holds the reference and/or
    the original as float arrays (any size). Pure arithmetic: 16-bit inputs stay 16-bit."""
    if opts.method == "none" or opts.strength == 0.0:
        return image
    reference = refs.get("reference")
    if reference is None:
        reference = refs.get("original")
    if reference is None:
        raise SdenhanceError("colorfix needs a reference image (`reference` or `original`)")

    from sdenhance.ops.color import color_transfer

    return color_transfer(image, reference, opts.method, strength=opts.strength)
