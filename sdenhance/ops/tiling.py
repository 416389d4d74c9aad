"""Tile grids and seam-free merging, shared by the GAN upscaler and the tiled diffusion stage.

Everything here is pure integer/numpy maths on pixel (or latent) coordinates:

- `spans` / `tile_grid`: full-size tiles that cover an axis, first at 0, last ending at the
  edge, starts spread evenly, so every overlap is at least the requested one and no partial
  tile is evaluated.
- `fit_tile`: the smallest tile that keeps the tile count, so the grid just covers the image.
- `blend_weights`: smooth feathering over the overlap, normalised to sum to one
  at every pixel, for any value range and any trailing channel count (pixels or latents).

Tiles are half-open boxes `[x0, x1) × [y0, y1)`; arrays are (H, W) or (H, W, C).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.rect import Rect

__all__ = [
    "Tile",
    "blend_weights",
    "fit_tile",
    "spans",
    "tile_grid",
]


@dataclass(frozen=True)
class Tile(Rect):
    """A tile of a grid: a `Rect` in image (or latent) coordinates."""


def _check_int(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SdenhanceError(f"`{name}` must be an integer ≥ {minimum}; got {value!r}")
    if value < minimum:
        raise SdenhanceError(f"`{name}` must be ≥ {minimum}; got {value!r}")


def _check_tile_overlap(tile: int, overlap: int, *, tile_name: str = "tile") -> None:
    _check_int(tile_name, tile, minimum=1)
    _check_int("overlap", overlap, minimum=0)
    if overlap >= tile:
        raise SdenhanceError(f"`overlap` must be ≥ 0 and < `{tile_name}` ({tile}); got {overlap}")


def _count(size: int, tile: int, overlap: int) -> int:
    """Number of tiles `spans` uses (ceil((size - overlap) / (tile - overlap)), at least 1)."""
    if size <= tile:
        return 1
    return -(-(size - overlap) // (tile - overlap))


def spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open 1-D spans of length `tile` covering `[0, size)` with overlaps ≥ `overlap`.

    One span `(0, size)` when the axis fits in one tile. Otherwise the fewest full-length tiles
    that keep every overlap ≥ `overlap`: the first starts at 0, the last ends at `size`, and the
    starts in between are spread as evenly as integers allow (steps differ by at most 1), so the
    surplus overlap is shared out instead of piling up in one partial last tile.
    """
    _check_int("size", size, minimum=1)
    _check_tile_overlap(tile, overlap)
    n = _count(size, tile, overlap)
    if n == 1:
        return [(0, size)]
    free = size - tile  # where the last tile starts
    # round(i * free / (n - 1)) in exact integer arithmetic (halves round up)
    starts = [(2 * i * free + (n - 1)) // (2 * (n - 1)) for i in range(n)]
    return [(s, s + tile) for s in starts]


def tile_grid(width: int, height: int, tile_w: int, tile_h: int, overlap: int) -> list[Tile]:
    """Row-major tiles covering a `width` × `height` image (see `spans` for each axis)."""
    _check_tile_overlap(tile_w, overlap, tile_name="tile_w")
    _check_tile_overlap(tile_h, overlap, tile_name="tile_h")
    cols = spans(width, tile_w, overlap)
    rows = spans(height, tile_h, overlap)
    return [Tile(x0, y0, x1, y1) for (y0, y1) in rows for (x0, x1) in cols]


def fit_tile(size: int, max_tile: int, overlap: int, multiple: int = 1) -> int:
    """The smallest tile length that covers `size` with as few tiles as `max_tile` would.

    With n tiles of length t and overlap o, every grid evaluates n·t ≥ size + (n - 1)·o pixels
    per axis, so the least work (and the least redundant overlap) comes from the fewest tiles,
    each as short as that count allows: t = ceil((size - o) / n) + o, rounded up to `multiple`
    (8 for latents, 64 for some models). The result is ≤ `max_tile`, > `overlap`, and never
    changes the tile count: a 520-px axis with `max_tile` 512 and overlap 64 gets two 292-px
    tiles overlapping by 64, not two 512-px tiles overlapping by 504. An axis that fits in one
    tile gets `size` rounded up to `multiple` (then `spans` clips the tile to the image).
    """
    _check_int("size", size, minimum=1)
    _check_int("multiple", multiple, minimum=1)
    _check_tile_overlap(max_tile, overlap, tile_name="max_tile")
    if max_tile % multiple:
        raise SdenhanceError(f"`max_tile` must be a multiple of {multiple}; got {max_tile}")
    n = _count(size, max_tile, overlap)
    needed = size if n == 1 else -(-(size - overlap) // n) + overlap
    smallest = (overlap // multiple + 1) * multiple  # the shortest legal tile: > overlap
    tile = max(smallest, -(-needed // multiple) * multiple)
    return min(tile, max_tile)


def _ramp(length: int, overlap: int) -> np.ndarray:
    """Smoothstep rising over the first `overlap` samples, sampled at pixel centres, then 1.

    s(x) = 3x² - 2x³ has s(x) + s(1 - x) = 1, so two tiles that overlap by exactly `overlap`
    already sum to one; it is C¹, so blended seams have no kink; and it is > 0 at every pixel
    centre, so every covered pixel keeps a positive weight.
    """
    x = (np.arange(length, dtype=np.float64) + 0.5) / max(overlap, 1)
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _axis_weights(lo: int, hi: int, size: int, overlap: int) -> np.ndarray:
    n = hi - lo
    w = np.ones(n, dtype=np.float64)
    if overlap <= 0:
        return w
    if lo > 0:  # a neighbour before: feather in
        w *= _ramp(n, overlap)
    if hi < size:  # a neighbour after: feather out
        w *= _ramp(n, overlap)[::-1]
    return w


def blend_weights(tile: Tile, width: int, height: int, overlap: int) -> np.ndarray:
    """(h, w) float32 feather weights of `tile`: ramps on inner sides, flat 1 at image borders.

    Sides that touch another tile fall smoothly towards 0 over `overlap` pixels so a tile's
    edge, where its content is least reliable and differs most from its neighbour's, contributes
    almost nothing; sides on the image border stay at 1, since nothing else covers them. Every
    value is strictly positive. Normalise by the sum over all tiles (`ops.grid_merge` for a grid).
    """
    _check_int("overlap", overlap, minimum=0)
    wx = _axis_weights(tile.x0, tile.x1, width, overlap)
    wy = _axis_weights(tile.y0, tile.y1, height, overlap)
    return np.outer(wy, wx).astype(np.float32)
