"""Tile maths: exact small grids written out in full, then properties over many sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tile_merge import merge_tiles, weight_sum

from sdenhance.errors import SdenhanceError
from sdenhance.ops.tiling import (
    Tile,
    blend_weights,
    fit_tile,
    spans,
    tile_grid,
)

# --- exact small cases ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "size,tile,overlap,expected",
    [
        (512, 512, 64, [(0, 512)]),
        (100, 512, 64, [(0, 100)]),
        (1, 8, 0, [(0, 1)]),
        (1, 1, 0, [(0, 1)]),
        (3, 1, 0, [(0, 1), (1, 2), (2, 3)]),
        (10, 4, 0, [(0, 4), (3, 7), (6, 10)]),
        (10, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10)]),
        (513, 512, 64, [(0, 512), (1, 513)]),
        (600, 512, 64, [(0, 512), (88, 600)]),
        (1000, 512, 64, [(0, 512), (244, 756), (488, 1000)]),
        (1000, 376, 64, [(0, 376), (312, 688), (624, 1000)]),
        (1024, 512, 64, [(0, 512), (256, 768), (512, 1024)]),
        (960, 512, 64, [(0, 512), (448, 960)]),
        (11, 5, 1, [(0, 5), (3, 8), (6, 11)]),
    ],
)
def test_spans_exact(size, tile, overlap, expected):
    assert spans(size, tile, overlap) == expected


def test_tile_grid_exact_row_major():
    assert tile_grid(10, 6, 6, 4, 2) == [
        Tile(0, 0, 6, 4),
        Tile(4, 0, 10, 4),
        Tile(0, 2, 6, 6),
        Tile(4, 2, 10, 6),
    ]
    assert tile_grid(5, 1, 8, 8, 0) == [Tile(0, 0, 5, 1)]


def test_tile_properties():
    t = Tile(3, 5, 10, 7)
    assert (t.width, t.height) == (7, 2)
    assert t.slices == (slice(5, 7), slice(3, 10))
    a = np.arange(100).reshape(10, 10)
    assert a[t.slices].shape == (2, 7)
    with pytest.raises(AttributeError):
        t.x0 = 1  # frozen


@pytest.mark.parametrize(
    "size,max_tile,overlap,multiple,expected",
    [
        (1000, 512, 64, 1, 376),  # 3 tiles either way; 376 makes every overlap exactly 64
        (1000, 512, 64, 8, 376),
        (600, 512, 64, 1, 332),  # two 332s overlapping by 64, not two 512s overlapping by 424
        (520, 512, 64, 1, 292),
        (520, 512, 64, 8, 296),
        (512, 512, 64, 1, 512),  # fits: the tile is the image
        (100, 512, 64, 8, 104),  # fits: rounded up to the multiple (spans clips to 100)
        (4, 512, 64, 8, 72),  # never ≤ overlap, so spans stays valid
        (128, 64, 8, 8, 48),  # 3 tiles: ceil(120 / 3) + 8
        (1, 1, 0, 1, 1),
    ],
)
def test_fit_tile_exact(size, max_tile, overlap, multiple, expected):
    assert fit_tile(size, max_tile, overlap, multiple) == expected


def test_blend_weights_exact_1d():
    # a 1-row image split in two 6-px tiles overlapping by exactly 4: smoothstep ramps
    tiles = tile_grid(8, 1, 6, 8, 4)
    assert tiles == [Tile(0, 0, 6, 1), Tile(2, 0, 8, 1)]
    s = [x * x * (3 - 2 * x) for x in (0.125, 0.375, 0.625, 0.875)]
    left = blend_weights(tiles[0], 8, 1, 4)
    right = blend_weights(tiles[1], 8, 1, 4)
    np.testing.assert_allclose(left[0], [1, 1, s[3], s[2], s[1], s[0]], rtol=1e-6)
    np.testing.assert_allclose(right[0], [s[0], s[1], s[2], s[3], 1, 1], rtol=1e-6)
    # overlap exactly as asked: the ramps already sum to one, no normalisation needed
    np.testing.assert_allclose(weight_sum(tiles, 8, 1, 4), np.ones((1, 8)), rtol=1e-6)


def test_blend_weights_flat_at_image_border_and_without_overlap():
    whole = Tile(0, 0, 7, 5)
    assert np.array_equal(blend_weights(whole, 7, 5, 3), np.ones((5, 7), np.float32))
    inner = Tile(2, 2, 9, 9)
    assert np.array_equal(blend_weights(inner, 20, 20, 0), np.ones((7, 7), np.float32))
    w = blend_weights(Tile(0, 4, 10, 14), 10, 20, 4)  # neighbours above and below only
    assert w.dtype == np.float32 and w.shape == (10, 10)
    assert np.all(w[:, 0] == w[:, 5])  # flat across columns: no left/right neighbour
    assert w[0, 0] < w[1, 0] < w[3, 0] < w[4, 0] == 1.0


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: spans(10, 0, 0), "`tile` must be ≥ 1; got 0"),
        (lambda: spans(10, 4, 4), r"`overlap` must be ≥ 0 and < `tile` \(4\); got 4"),
        (lambda: spans(10, 4, -1), "`overlap` must be ≥ 0; got -1"),
        (lambda: spans(0, 4, 1), "`size` must be ≥ 1; got 0"),
        (lambda: spans(10, 4.5, 1), "`tile` must be an integer"),
        (lambda: tile_grid(10, 10, 8, 2, 2), r"`overlap` must be ≥ 0 and < `tile_h` \(2\)"),
        (lambda: fit_tile(100, 64, 64), r"< `max_tile` \(64\); got 64"),
        (lambda: fit_tile(100, 60, 8, 8), "`max_tile` must be a multiple of 8; got 60"),
        (lambda: fit_tile(100, 64, 8, 0), "`multiple` must be ≥ 1; got 0"),
        (lambda: tile_grid(10, 10, 3, 8, 3), r"< `tile_w` \(3\)"),
    ],
)
def test_invalid_arguments_name_option_value_and_allowed(call, match):
    with pytest.raises(SdenhanceError, match=match):
        call()


def test_merge_rejects_mismatched_patches():
    tiles = tile_grid(8, 8, 6, 6, 2)
    with pytest.raises(ValueError, match="needs"):
        merge_tiles(tiles, [np.zeros((5, 6))] * len(tiles), 8, 8, 2)
    with pytest.raises(ValueError):
        merge_tiles(tiles, [np.zeros((6, 6))] * (len(tiles) - 1), 8, 8, 2)
    with pytest.raises(ValueError, match="trailing"):
        merge_tiles(tiles, [np.zeros((6, 6, 3)), *[np.zeros((6, 6, 4))] * 3], 8, 8, 2)
    with pytest.raises(ValueError, match="cover"):
        merge_tiles([Tile(0, 0, 4, 8)], [np.zeros((8, 4))], 8, 8, 2)


# --- properties -----------------------------------------------------------------------------

sizes = st.integers(1, 3000)
tile_and_overlap = st.integers(1, 700).flatmap(
    lambda t: st.tuples(st.just(t), st.integers(0, t - 1))
)


@settings(max_examples=400, deadline=None)
@given(size=sizes, to=tile_and_overlap)
def test_spans_cover_with_full_tiles_and_enough_overlap(size, to):
    tile, overlap = to
    got = spans(size, tile, overlap)
    assert got[0][0] == 0 and got[-1][1] == size
    if size <= tile:
        assert got == [(0, size)]
        return
    assert len(got) == math.ceil((size - overlap) / (tile - overlap))
    assert all(b - a == tile for a, b in got)  # no partial tile
    starts = [a for a, _ in got]
    steps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(s > 0 for s in steps)  # strictly increasing: no duplicate tile
    assert max(steps) - min(steps) <= 1  # spread as evenly as integers allow
    assert all(tile - s >= overlap for s in steps)  # every overlap ≥ requested
    # one fewer tile could not keep the overlap: the count is minimal
    assert (len(got) - 1) * (tile - overlap) + overlap < size


@settings(max_examples=400, deadline=None)
@given(size=sizes, to=tile_and_overlap, multiple=st.sampled_from([1, 2, 8, 64]))
def test_fit_tile_keeps_count_and_is_smallest(size, to, multiple):
    max_tile, overlap = to
    max_tile = max(multiple, max_tile - max_tile % multiple)
    if overlap >= max_tile:
        overlap = max_tile - 1
    t = fit_tile(size, max_tile, overlap, multiple)
    assert t % multiple == 0 and overlap < t <= max_tile
    n_max, n_fit = len(spans(size, max_tile, overlap)), len(spans(size, t, overlap))
    assert n_fit == n_max  # never more tiles than max_tile needs
    if n_fit > 1:
        assert n_fit * t <= n_max * max_tile  # never more evaluated pixels
        smaller = t - multiple
        assert smaller <= overlap or len(spans(size, smaller, overlap)) > n_max  # the smallest


@settings(max_examples=150, deadline=None)
@given(
    w=st.integers(1, 2000),
    h=st.integers(1, 2000),
    to=st.integers(8, 600).flatmap(lambda t: st.tuples(st.just(t), st.integers(0, t // 2))),
)
def test_fit_tile_reduces_evaluated_area(w, h, to):
    max_tile, overlap = to
    tw, th = fit_tile(w, max_tile, overlap), fit_tile(h, max_tile, overlap)
    fitted = sum(t.width * t.height for t in tile_grid(w, h, tw, th, overlap))
    naive = math.ceil(w / max_tile) * math.ceil(h / max_tile) * max_tile * max_tile
    full = sum(t.width * t.height for t in tile_grid(w, h, max_tile, max_tile, overlap))
    assert w * h <= fitted <= full
    assert len(tile_grid(w, h, tw, th, overlap)) == len(
        tile_grid(w, h, max_tile, max_tile, overlap)
    )
    if overlap == 0:
        assert fitted <= naive


def test_fit_tile_saves_work_on_the_brief_examples():
    # 520×520, max 512, overlap 64: 4 tiles of 292² instead of 4 of 512²
    t = fit_tile(520, 512, 64)
    assert 4 * t * t < 0.33 * 4 * 512 * 512
    grid = tile_grid(520, 520, t, t, 64)
    assert len(grid) == 4 and all(g.width == g.height == 292 for g in grid)


grids = st.tuples(
    st.integers(1, 300),  # width
    st.integers(1, 300),  # height
    st.integers(2, 120),  # tile_w
    st.integers(2, 120),  # tile_h
    st.integers(0, 40),  # overlap
    st.integers(0, 3),  # step (for shifted grids)
).filter(lambda g: g[4] < min(g[2], g[3]))


def _check_grid(tiles, width, height, tile_w, tile_h, overlap):
    cover = np.zeros((height, width), np.int32)
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= width and 0 <= t.y0 < t.y1 <= height
        assert t.width == min(tile_w, width) and t.height == min(tile_h, height)
        cover[t.slices] += 1
    assert cover.min() >= 1
    assert len(set(tiles)) == len(tiles)


@settings(max_examples=200, deadline=None)
@given(g=grids)
def test_grids_cover_and_weights_normalise(g):
    width, height, tile_w, tile_h, overlap, step = g
    for tiles in (tile_grid(width, height, tile_w, tile_h, overlap),):
        _check_grid(tiles, width, height, tile_w, tile_h, overlap)
        total = weight_sum(tiles, width, height, overlap)
        assert total.min() > 0
        normalised = np.zeros((height, width), np.float64)
        for t in tiles:
            w = blend_weights(t, width, height, overlap)
            assert w.shape == (t.height, t.width) and w.min() > 0 and w.max() <= 1
            normalised[t.slices] += w / total[t.slices]
        # weights are float32: a few ulps (1.2e-7 each) per overlapping tile, never more
        np.testing.assert_allclose(normalised, 1.0, atol=4 * 4 * 1.2e-7)


@settings(max_examples=150, deadline=None)
@given(g=grids, channels=st.sampled_from([None, 1, 3, 4]), seed=st.integers(0, 2**32 - 1))
def test_merge_of_cut_patches_reproduces_the_image(g, channels, seed):
    width, height, tile_w, tile_h, overlap, step = g
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    image = (rng.standard_normal(shape) * 5).astype(np.float32)  # any range: latents too
    tiles = tile_grid(width, height, tile_w, tile_h, overlap)
    merged = merge_tiles(tiles, (image[t.slices] for t in tiles), width, height, overlap)
    assert merged.shape == image.shape and merged.dtype == np.float32
    np.testing.assert_allclose(merged, image, atol=1e-6 * 5 * 8)
    const = merge_tiles(
        tiles,
        [np.full(image[t.slices].shape, 0.7, np.float32) for t in tiles],
        width,
        height,
        overlap,
    )
    np.testing.assert_allclose(const, 0.7, atol=1e-6)


@pytest.mark.parametrize(
    "width,height,tile,overlap",
    [(1, 1, 8, 2), (1000, 1, 64, 16), (1, 777, 64, 16), (33, 1025, 64, 8), (257, 131, 64, 31)],
)
def test_merge_exact_on_thin_odd_and_tall_images(width, height, tile, overlap):
    image = np.random.default_rng(0).random((height, width, 3)).astype(np.float32)
    tiles = tile_grid(
        width, height, fit_tile(width, tile, overlap), fit_tile(height, tile, overlap), overlap
    )
    merged = merge_tiles(tiles, [image[t.slices] for t in tiles], width, height, overlap)
    np.testing.assert_allclose(merged, image, atol=1e-6)


def test_merge_blends_disagreeing_tiles_smoothly():
    # two tiles that disagree by a constant: the result moves between them without a jump
    tiles = tile_grid(200, 4, 120, 120, 40)
    assert tiles == [Tile(0, 0, 120, 4), Tile(80, 0, 200, 4)]
    merged = merge_tiles(tiles, [np.zeros((4, 120)), np.ones((4, 120))], 200, 4, 40)
    row = merged[0]
    assert np.all(row[:80] == 0) and np.all(row[120:] == 1)
    steps = np.diff(row)
    assert steps.min() >= 0  # monotone
    assert steps.max() < 1.6 / 40  # smoothstep's steepest slope is 1.5 per overlap length
