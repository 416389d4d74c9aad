"""The check of a mask that every input of a batch shares, run once before any work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sdenhance.ops.masks import check_mask, mask_from_image


def check_shared_mask(opts: Any, ctx: Any, region: Callable[[np.ndarray, Any], np.ndarray]) -> None:
    """Refuse the shared mask (`ctx.images["mask"]`) when it is wrong for every input: it
    selects nothing, or `region(mask, opts)` (the stage's grown region) refuses it."""
    mask_img = ctx.images.get("mask")
    if mask_img is None:
        return
    mask = mask_from_image(mask_img)
    if not np.any(mask > 0):
        check_mask(mask, (mask.shape[1], mask.shape[0]))  # its one "selects nothing" message
    if not opts.mask_resize:  # the inputs it fits have its size, so this is their region too
        region(mask, opts)
