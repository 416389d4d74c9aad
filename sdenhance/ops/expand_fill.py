"""The first content of an expansion's new area, which the repaint starts from (`FILLS`).

Below strength 1 the model keeps the broad colours of what it starts from, so a fill that
continues the image's border gives a new area that belongs to the picture: `blur` carries the
border's colours outward smoothly, `mirror` reflects the image at its edges, `noise` is seeded
noise of the border's colours, `patchmatch` copies texture from the image, `telea` propagates
the border's colours inward (OpenCV). The fills themselves are `ops.inpaint_fill` and
`ops.fill`, shared with inpainting and removal.
"""

from __future__ import annotations

import numpy as np

from sdenhance.ops.expand_geometry import Placement, mirror_fill, new_area, on_canvas
from sdenhance.ops.inpaint_fill import initial_fill, ring_around

FILLS = ("blur", "mirror", "noise", "patchmatch", "telea")
RING_PX = 16  # depth of the original's border that the noise fill reads its colours from


def first_fill(rgb: np.ndarray, placed: Placement, fill: str, *, seed: int | None) -> np.ndarray:
    """(H, W, 3) uint8 canvas: the original at its box, the new area filled by `fill`."""
    if fill == "mirror":
        return mirror_fill(rgb, placed)
    canvas = on_canvas(rgb, placed)
    new = new_area(placed)
    if fill == "patchmatch":
        from sdenhance.ops.fill import DEFAULT_RADIUS, fill_region

        return fill_region(
            canvas, new, method="patchmatch", radius=DEFAULT_RADIUS["patchmatch"], seed=seed or 0
        )
    return initial_fill(canvas, new, fill, ring=ring_around(new, RING_PX), seed=seed)
