"""Blend the patches of a rectangular tile grid into one float32 array, with no weight-sum image.

`tiling.merge_tiles` accepts any tiles, so it keeps an image-size weight sum and divides by it
at the end. A grid built by `tiling.tile_grid` is the product of one list of column spans and
one list of row spans, and each tile's feather weight is the outer product of a row ramp and a
column ramp, so the weight sum is the outer product of two 1-D sums. Dividing each ramp by its
1-D sum before use makes every tile's weights already normalised: the patches are added
straight into the output, which is the only image-size buffer (the upscaler's output of
several megapixels, where the weight sum would cost a third of it again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from sdenhance.ops.tiling import Tile, blend_weights

__all__ = ["axis_weights", "merge_grid"]


def axis_weights(spans: Sequence[tuple[int, int]], size: int, overlap: int) -> list[np.ndarray]:
    """Per-span float32 1-D weights along one axis that sum to exactly one at every position.

    Each span's ramp is `blend_weights` along that axis (smoothstep over `overlap` on sides
    facing a neighbour, flat at the image border), divided by the sum of all spans' ramps.
    """
    ramps = [blend_weights(Tile(lo, 0, hi, 1), size, 1, overlap)[0] for lo, hi in spans]
    total = np.zeros(size, dtype=np.float64)
    for (lo, hi), ramp in zip(spans, ramps, strict=True):
        total[lo:hi] += ramp
    if not np.all(total > 0):
        raise ValueError("the spans do not cover the whole axis")
    return [
        (ramp / total[lo:hi]).astype(np.float32)
        for (lo, hi), ramp in zip(spans, ramps, strict=True)
    ]


def merge_grid(
    cols: Sequence[tuple[int, int]],
    rows: Sequence[tuple[int, int]],
    patches: Iterable[np.ndarray],
    width: int,
    height: int,
    overlap: int,
) -> np.ndarray:
    """(height, width, C) float32 blend of row-major `patches` on the grid `rows` × `cols`.

    Same result as `tiling.merge_tiles` on `tile_grid`'s tiles (up to float rounding), but the
    output is the only image-size array: each patch is weighted by its normalised row and
    column ramps (`axis_weights`) and added in place, one patch at a time.
    """
    wx = axis_weights(cols, width, overlap)
    wy = axis_weights(rows, height, overlap)
    out: np.ndarray | None = None
    count = 0
    it = iter(patches)
    for (y0, y1), ry in zip(rows, wy, strict=True):
        for (x0, x1), rx in zip(cols, wx, strict=True):
            patch = next(it, None)
            if patch is None:
                raise ValueError(f"merge_grid got {count} patches for {len(rows) * len(cols)}")
            patch = np.asarray(patch, dtype=np.float32)
            if patch.ndim != 3 or patch.shape[:2] != (y1 - y0, x1 - x0):
                raise ValueError(
                    f"patch {count} has shape {patch.shape}, needs ({y1 - y0}, {x1 - x0}, C)"
                )
            if out is None:
                out = np.zeros((height, width, patch.shape[2]), dtype=np.float32)
            patch *= ry[:, None, None]  # the patch is the caller's to spend: weighted in place
            patch *= rx[None, :, None]
            out[y0:y1, x0:x1] += patch
            count += 1
    if next(it, None) is not None:
        raise ValueError(f"merge_grid got more than {len(rows) * len(cols)} patches")
    assert out is not None  # rows and cols are never empty
    return out
