"""Which crops a masked repaint works on, and at what size the model sees each one.

Inpaint, facefix and expand repaint boxes of an image: each box is cut out with context,
resampled to the model's native resolution (so a small mask gets the model's full detail) and
pasted back under its own blend mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.crops import crop_groups
from sdenhance.ops.masks import Box, grow
from sdenhance.ops.sizes import LATENT_FACTOR, processing_size


@dataclass(frozen=True)
class Job:
    """One repaint: the box it covers, its blend mask there, and the size the model sees."""

    box: Box
    blend: np.ndarray  # (y1-y0, x1-x0) float32: this job's own feathered regions, 0 elsewhere
    size: tuple[int, int]  # (w, h) given to the pipeline
    resample: bool  # False: the box is padded to `size`, not resampled (area "whole")


def crop_job(box: Box, blend: np.ndarray, native: int) -> Job:
    """A repaint of `box` resampled to the model's native resolution (its aspect kept)."""
    return Job(box, blend, processing_size((box[2] - box[0], box[3] - box[1]), native), True)


def whole_job(blend: np.ndarray) -> Job:
    """A repaint of the whole image at its own size, padded to whole latent cells."""
    h, w = blend.shape
    f = LATENT_FACTOR
    return Job((0, 0, w, h), blend, (w + (-w) % f, h + (-h) % f), False)


def plan_jobs(blend: np.ndarray, *, area: str, padding: int, native: int) -> list[Job]:
    """The repaints that cover `blend`: crops around its regions (`area` "masked"), or the
    whole image ("whole")."""
    if area == "whole":
        return [whole_job(blend)]
    h, w = blend.shape
    groups = crop_groups(
        blend, padding=padding, aspect=1.0, multiple=LATENT_FACTOR, image_size=(w, h)
    )
    return [crop_job(box, own, native) for box, own in groups]


def grown_region(mask: np.ndarray, px: int) -> np.ndarray:
    """The mask grown (or, negative, shrunk) by `px`; refused when shrinking leaves nothing."""
    region = grow(mask, px)
    if not np.any(region > 0):
        raise SdenhanceError(
            f"mask selects nothing after `grow`={px} px shrinks it; use a smaller shrink"
        )
    return region
