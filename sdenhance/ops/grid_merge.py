"""Blend the patches of a rectangular tile grid into one float32 array, with no weight-sum image.

A general merge of any tiles keeps an image-size weight sum and divides by it at the end. A
grid built by `tiling.tile_grid` is the product of one list of column spans and
one list of row spans, and each tile's feather weight is the outer product of a row ramp and a
column ramp, so the weight sum is the outer product of two 1-D sums. Dividing each ramp by its
1-D sum before use makes every tile's weights already normalised: the patches are added
straight into the output, which is the only image-size buffer (the upscaler's output of
several megapixels, where the weight sum would cost a third of it again). `blend_rows` goes
further: it hands out finished rows as soon as no later tile touches them, so a caller can
convert them to 8 bits on the way and never hold the float32 image at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from sdenhance.ops.tiling import Tile, blend_weights

__all__ = ["axis_weights", "blend_rows", "merge_grid"]


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


def blend_rows(
    cols: Sequence[tuple[int, int]],
    rows: Sequence[tuple[int, int]],
    patches: Iterable[np.ndarray],
    width: int,
    overlap: int,
    emit: Callable[[int, np.ndarray], None],
) -> None:
    """Blend row-major `patches` on the grid `rows` × `cols`, output rows handed out as they end.

    Each patch (h, w, C) is weighted by its normalised row and column ramps (`axis_weights`,
    in place: the patches are the caller's to spend) and added into a float32 band as tall as
    one row of tiles. When the next row of tiles starts, the rows above its start are final:
    `emit(y0, block)` gets them, top to bottom, and may change `block` in place; the rows the
    next tiles overlap move to the top of the band. So the only float buffer is that band,
    allocated once (no churn of large blocks for the allocator to fragment).
    """
    for (a0, a1), (b0, b1) in zip(rows, rows[1:], strict=False):
        if not a0 < b0 <= a1 <= b1:
            raise ValueError("rows must be sorted spans, each overlapping or touching the last")
    wx = axis_weights(cols, width, overlap)
    wy = axis_weights(rows, rows[-1][1], overlap)
    it = iter(patches)
    band: np.ndarray | None = None
    band_y0 = band_y1 = count = 0  # the rows [band_y0, band_y1) of the band hold sums
    for (y0, y1), ry in zip(rows, wy, strict=True):
        if band is not None:
            emit(band_y0, band[: y0 - band_y0])
            kept = band_y1 - y0
            band[:kept] = band[y0 - band_y0 : band_y1 - band_y0].copy()
            band[kept:] = 0.0
        band_y0, band_y1 = y0, y1
        for (x0, x1), rx in zip(cols, wx, strict=True):
            patch = next(it, None)
            if patch is None:
                raise ValueError(f"got {count} patches for {len(rows) * len(cols)} tiles")
            patch = np.asarray(patch, dtype=np.float32)
            if patch.ndim != 3 or patch.shape[:2] != (y1 - y0, x1 - x0):
                raise ValueError(
                    f"patch {count} has shape {patch.shape}, needs ({y1 - y0}, {x1 - x0}, C)"
                )
            if band is None:
                tall = max(b - a for a, b in rows)
                band = np.zeros((tall, width, patch.shape[2]), dtype=np.float32)
            patch *= ry[:, None, None]
            patch *= rx[None, :, None]
            band[: y1 - y0, x0:x1] += patch
            count += 1
    if next(it, None) is not None:
        raise ValueError(f"got more than {len(rows) * len(cols)} patches")
    assert band is not None  # rows and cols are never empty
    emit(band_y0, band[: band_y1 - band_y0])


def merge_grid(
    cols: Sequence[tuple[int, int]],
    rows: Sequence[tuple[int, int]],
    patches: Iterable[np.ndarray],
    width: int,
    overlap: int,
) -> np.ndarray:
    """(height, width, C) float32 blend of row-major `patches` on the grid `rows` × `cols`.

    The same result as a general weight-sum merge of `tile_grid`'s tiles (up to float
    rounding), with the output the only image-size array (see `blend_rows`).
    """
    out: list[np.ndarray] = []

    def put(y0: int, block: np.ndarray) -> None:
        if not out:
            out.append(np.empty((rows[-1][1], width, block.shape[2]), dtype=np.float32))
        out[0][y0 : y0 + len(block)] = block

    blend_rows(cols, rows, patches, width, overlap, put)
    return out[0]
