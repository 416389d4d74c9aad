"""Grid merging without a weight-sum image: the same blend as `merge_tiles`, rows streamed out."""

from __future__ import annotations

import numpy as np
import pytest
from tile_merge import merge_tiles

from sdenhance.ops.grid_merge import axis_weights, blend_rows, merge_grid
from sdenhance.ops.tiling import spans, tile_grid

GRIDS = [  # width, height, tile_w, tile_h, overlap, channels
    (40, 24, 16, 12, 4, 3),
    (37, 53, 20, 16, 6, 1),
    (64, 64, 64, 64, 8, 4),  # one tile
    (96, 20, 32, 20, 8, 3),  # one row of tiles
    (18, 90, 18, 25, 7, 3),  # one column, surplus overlaps
]


def _patches(width, height, tw, th, overlap, channels, seed=0):
    rng = np.random.default_rng(seed)
    tiles = tile_grid(width, height, tw, th, overlap)
    return tiles, [rng.random((t.height, t.width, channels)).astype(np.float32) for t in tiles]


@pytest.mark.parametrize("width,height,tw,th,overlap,channels", GRIDS)
def test_merge_grid_equals_merge_tiles(width, height, tw, th, overlap, channels):
    tiles, patches = _patches(width, height, tw, th, overlap, channels)
    expected = merge_tiles(tiles, [p.copy() for p in patches], width, height, overlap)
    cols, rows = spans(width, tw, overlap), spans(height, th, overlap)
    got = merge_grid(cols, rows, patches, width, overlap)
    assert got.shape == (height, width, channels) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-6)


@pytest.mark.parametrize("width,height,tw,th,overlap,channels", GRIDS)
def test_blend_rows_hands_out_every_row_once_in_order(width, height, tw, th, overlap, channels):
    tiles, patches = _patches(width, height, tw, th, overlap, channels, seed=1)
    expected = merge_tiles(tiles, [p.copy() for p in patches], width, height, overlap)
    cols, rows = spans(width, tw, overlap), spans(height, th, overlap)
    got, starts = [], []

    def emit(y0, block):
        starts.append(y0)
        got.append(block.copy())
        block[:] = -1.0  # the receiver may spend the block: nothing later may depend on it

    blend_rows(cols, rows, patches, width, overlap, emit)
    assert starts == sorted(starts) and starts[0] == 0
    assert [s + len(b) for s, b in zip(starts, got, strict=True)][:-1] == starts[1:]
    np.testing.assert_allclose(np.concatenate(got), expected, atol=2e-6)


def test_axis_weights_sum_to_one_and_fall_at_inner_edges():
    s = spans(100, 40, 10)
    w = axis_weights(s, 100, 10)
    total = np.zeros(100)
    for (lo, hi), ramp in zip(s, w, strict=True):
        total[lo:hi] += ramp
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert w[0][0] == 1.0 and w[0][-1] < 0.05 and w[1][0] < 0.05  # image border vs inner edge


def test_wrong_patches_are_refused():
    cols, rows = spans(40, 16, 4), spans(24, 12, 4)
    n = len(cols) * len(rows)
    good = [np.zeros((12, 16, 3), np.float32) for _ in range(n)]
    with pytest.raises(ValueError, match="patches for"):
        merge_grid(cols, rows, good[:-1], 40, 4)
    with pytest.raises(ValueError, match="more than"):
        merge_grid(cols, rows, [*good, good[0]], 40, 4)
    with pytest.raises(ValueError, match="needs"):
        merge_grid(cols, rows, [np.zeros((12, 15, 3), np.float32)] * n, 40, 4)
    with pytest.raises(ValueError, match="sorted"):
        merge_grid(cols, rows[::-1], good, 40, 4)
