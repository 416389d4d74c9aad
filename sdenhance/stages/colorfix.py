"""Colour fix: pull the image's colours back to a reference (by default the run's input).

Diffusion drifts colours; this stage undoes the drift with `sdenhance.ops.color`. The reference is
`ctx.images["reference"]` when given, else `ctx.images["original"]`, so in a multi-step recipe
the fix matches the untouched input rather than the previous step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdenhance.errors import SdenhanceError
from sdenhance.options import option

if TYPE_CHECKING:
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
    reference = ctx.images.get("reference")
    if reference is None:
        reference = ctx.images.get("original")
    if reference is None:
        raise SdenhanceError("colorfix needs a reference image (`reference` or `original`)")

    from sdenhance.io.convert import from_array, to_array
    from sdenhance.ops.color import color_transfer

    out = color_transfer(
        to_array(image.convert("RGB")),
        to_array(reference.convert("RGB")),
        opts.method,
        strength=opts.strength,
    )
    return from_array(out)
