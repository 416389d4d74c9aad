"""The general merge of tile patches with an image-size weight sum: the reference the grid
merge (`sdenhance.ops.grid_merge`, which needs no weight-sum image) is tested against."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from sdenhance.ops.tiling import Tile, blend_weights


def weight_sum(tiles: Sequence[Tile], width: int, height: int, overlap: int) -> np.ndarray:
    """(height, width) float32 sum of every tile's `blend_weights` (> 0 wherever covered)."""
    total = np.zeros((height, width), dtype=np.float32)
    for tile in tiles:
        total[tile.slices] += blend_weights(tile, width, height, overlap)
    return total


def merge_tiles(
    tiles: Sequence[Tile],
    patches: Iterable[np.ndarray],
    width: int,
    height: int,
    overlap: int,
) -> np.ndarray:
    """Blend per-tile patches into one (height, width[, C]) array with weights summing to one.

    `patches` are (h, w) or (h, w, C) arrays in the order of `tiles`, any value range and any
    channel count (RGB pixels, alpha, 4-channel latents). They are consumed one at a time, so a
    generator keeps only the output, the weight sum and one patch in memory. Where tiles agree
    the result equals them exactly (up to float rounding); where they differ it changes smoothly.
    """
    out: np.ndarray | None = None
    total = np.zeros((height, width), dtype=np.float32)
    count = 0
    for tile, patch in zip(tiles, patches, strict=True):
        patch = np.asarray(patch)
        if patch.ndim < 2 or patch.shape[:2] != (tile.height, tile.width):
            raise ValueError(
                f"patch {count} has shape {patch.shape}, tile {tile} needs "
                f"({tile.height}, {tile.width}[, C])"
            )
        if out is None:
            dtype = np.result_type(patch.dtype, np.float32)
            out = np.zeros((height, width, *patch.shape[2:]), dtype=dtype)
        elif patch.shape[2:] != out.shape[2:]:
            raise ValueError(
                f"patch {count} has trailing shape {patch.shape[2:]}, expected {out.shape[2:]}"
            )
        w = blend_weights(tile, width, height, overlap)
        total[tile.slices] += w
        out[tile.slices] += patch * _expand(w, patch.ndim)
        count += 1
    if out is None:
        raise ValueError("merge_tiles needs at least one tile")
    if not np.all(total > 0):
        raise ValueError("the tiles do not cover the whole image")
    out /= _expand(total, out.ndim)
    return out


def _expand(weights: np.ndarray, ndim: int) -> np.ndarray:
    """(h, w) weights broadcastable against an (h, w, ...) array of `ndim` dimensions."""
    return weights.reshape(weights.shape + (1,) * (ndim - 2))
