"""Mask maths: reading every mode, checks, exact morphology, crop geometry, bit-exact pastes."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.ops import crops
from sdenhance.ops.crops import composite_exact, crop, crop_box, crop_boxes, crop_groups, paste
from sdenhance.ops.masks import (
    bbox,
    check_mask,
    components,
    feather,
    grow,
    mask_from_alpha,
    mask_from_image,
)

FAST = settings(max_examples=60, deadline=None)


def disk_count(r: int) -> int:
    """Lattice points with x² + y² ≤ r² (Gauss circle problem)."""
    return sum(1 for x in range(-r, r + 1) for y in range(-r, r + 1) if x * x + y * y <= r * r)


def brute_distance(selected: np.ndarray) -> np.ndarray:
    """Euclidean distance from every pixel to the nearest selected one (inf if none)."""
    h, w = selected.shape
    ys, xs = np.nonzero(selected)
    if ys.size == 0:
        return np.full((h, w), np.inf)
    yy, xx = np.mgrid[:h, :w]
    d2 = (yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2
    return np.sqrt(d2.min(axis=-1))


def binary_masks(max_side: int = 24):
    shapes = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return shapes.flatmap(lambda s: arrays(np.float32, s, elements=st.sampled_from([0.0, 1.0])))


def rect_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    w, h = size
    m = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = 1
    return m


# --- reading ------------------------------------------------------------------------------------


def _img(mode: str, pixels: list) -> Image.Image:
    im = Image.new(mode, (len(pixels), 1))
    im.putdata(pixels)
    return im


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (_img("1", [0, 1, 0, 1]), [0, 1, 0, 1]),
        (_img("L", [0, 127, 128, 255]), [0, 0, 1, 1]),
        (_img("RGB", [(0, 0, 0), (127, 127, 127), (128, 128, 128), (255, 255, 255)]), [0, 0, 1, 1]),
        # luminance, not any channel: pure red is dark (0.299), pure green bright (0.587)
        (_img("RGB", [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]), [0, 1, 0, 1]),
        # colour under transparency never selects; opaque white does
        (
            _img(
                "RGBA",
                [(255, 255, 255, 0), (255, 255, 255, 255), (0, 0, 0, 255), (255, 255, 255, 127)],
            ),
            [0, 1, 0, 0],
        ),
        # flat colour, shape only in alpha (a brush layer): opaque = repaint
        (
            _img("RGBA", [(0, 0, 0, 0), (0, 0, 0, 255), (0, 0, 0, 128), (0, 0, 0, 127)]),
            [0, 1, 1, 0],
        ),
        (
            _img(
                "RGBA", [(200, 30, 30, 0), (200, 30, 30, 255), (200, 30, 30, 0), (200, 30, 30, 200)]
            ),
            [0, 1, 0, 1],
        ),
        (_img("LA", [(40, 0), (40, 255), (40, 128), (40, 0)]), [0, 1, 1, 0]),
        (_img("LA", [(255, 0), (255, 255), (40, 255), (0, 0)]), [0, 1, 0, 0]),
        (_img("I;16", [0, 32767, 32768, 65535]), [0, 0, 1, 1]),
        (_img("I", [-5, 32767, 32768, 70000]), [0, 0, 1, 1]),
        (_img("F", [0.0, 0.49, 0.5, 1.0]), [0, 0, 1, 1]),
        (
            _img("CMYK", [(0, 0, 0, 0), (0, 0, 0, 255), (0, 0, 0, 100), (255, 255, 255, 0)]),
            [1, 0, 1, 0],
        ),
    ],
    ids=[
        "1",
        "L",
        "RGB-grey",
        "RGB-colour",
        "RGBA",
        "RGBA-alpha-only",
        "RGBA-flat-red",
        "LA-alpha-only",
        "LA",
        "I;16",
        "I",
        "F",
        "CMYK",
    ],
)
def test_mask_from_image_every_mode(image: Image.Image, expected: list[int]) -> None:
    got = mask_from_image(image)
    assert got.dtype == np.float32
    assert got.shape == (1, 4)
    assert got[0].tolist() == expected


def test_mask_from_palette_images() -> None:
    rgb = _img("RGB", [(0, 0, 0), (255, 255, 255), (200, 200, 200), (10, 10, 10)])
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert mask_from_image(pal)[0].tolist() == [0, 1, 1, 0]
    # palette with a transparent entry: white but transparent selects nothing
    pal_t = _img("P", [0, 1, 1, 0])
    pal_t.putpalette([255, 255, 255, 255, 255, 255] + [0] * 762)
    pal_t.info["transparency"] = 0
    assert mask_from_image(pal_t)[0].tolist() == [0, 1, 1, 0]


def test_mask_from_16_bit_png(tmp_path) -> None:
    arr = np.array([[0, 1000, 40000, 65535]], np.uint16)
    Image.fromarray(arr).save(tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as im:
        assert mask_from_image(im)[0].tolist() == [0, 0, 1, 1]


@FAST
@given(arrays(np.uint8, (5, 7)))
def test_grey_in_any_mode_agrees_with_l(values: np.ndarray) -> None:
    expected = (values >= 128).astype(np.float32)
    grey = Image.fromarray(values, "L")
    for mode in ("L", "RGB", "RGBA", "LA"):
        assert np.array_equal(mask_from_image(grey.convert(mode)), expected), mode


def test_mask_from_alpha_transparent_is_repaint() -> None:
    alpha = _img("L", [0, 127, 128, 255])
    assert mask_from_alpha(alpha)[0].tolist() == [1, 1, 0, 0]
    rgba = _img("RGBA", [(9, 9, 9, 0), (9, 9, 9, 127), (9, 9, 9, 128), (9, 9, 9, 255)])
    assert mask_from_alpha(rgba)[0].tolist() == [1, 1, 0, 0]


# --- check_mask ---------------------------------------------------------------------------------


def test_check_mask_size_mismatch_names_both_sizes_and_the_fix() -> None:
    with pytest.raises(SdenhanceError) as info:
        check_mask(np.ones((80, 100), np.float32), (128, 96))
    text = str(info.value)
    assert "100×80" in text and "128×96" in text and "--mask-resize" in text


def test_check_mask_resize_is_nearest() -> None:
    small = np.array([[1, 0], [0, 0]], np.float32)
    out = check_mask(small, (4, 4), resize=True)
    expected = np.zeros((4, 4), np.float32)
    expected[:2, :2] = 1
    assert out.dtype == np.float32
    assert np.array_equal(out, expected)


def test_check_mask_empty_is_an_error() -> None:
    with pytest.raises(SdenhanceError, match="mask selects nothing"):
        check_mask(np.zeros((4, 5), np.float32), (5, 4))


def test_check_mask_full_is_allowed_with_a_warning(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="sdenhance"):
        out = check_mask(np.ones((4, 5), np.float32), (5, 4))
    assert np.array_equal(out, np.ones((4, 5)))
    assert "whole image" in caplog.text


def test_check_mask_partial_is_quiet(caplog) -> None:
    m = np.zeros((4, 5), np.float32)
    m[1, 2] = 1
    with caplog.at_level(logging.WARNING, logger="sdenhance"):
        check_mask(m, (5, 4))
    assert caplog.text == ""


# --- grow / shrink --------------------------------------------------------------------------------


@pytest.mark.parametrize(("r", "count"), [(1, 5), (2, 13), (3, 29), (4, 49), (5, 81), (10, 317)])
def test_grow_single_pixel_is_the_euclidean_disk(r: int, count: int) -> None:
    m = np.zeros((31, 31), np.float32)
    m[15, 15] = 1
    out = grow(m, r)
    assert out.sum() == count == disk_count(r)
    yy, xx = np.mgrid[:31, :31]
    assert np.array_equal(out > 0, (yy - 15) ** 2 + (xx - 15) ** 2 <= r * r)
    assert grow(m, -1).sum() == 0


def test_grow_exact_rows_for_radius_2() -> None:
    m = np.zeros((5, 5), np.float32)
    m[2, 2] = 1
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [0, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 0, 0],
        ],
        np.float32,
    )
    assert np.array_equal(grow(m, 2), expected)


@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_shrink_square_loses_exactly_r_per_side(r: int) -> None:
    m = rect_mask((30, 30), (5, 7, 20, 22))  # 15 × 15
    out = grow(m, -r)
    assert np.array_equal(out, rect_mask((30, 30), (5 + r, 7 + r, 20 - r, 22 - r)))


def test_square_grown_has_round_corners_and_straight_sides() -> None:
    m = rect_mask((20, 20), (8, 8, 12, 12))
    out = grow(m, 3)
    assert out[8:12, 5:15].all() and out[5:15, 8:12].all()  # straight sides, exactly 3 out
    assert out[8, 4] == 0 and out[4, 8] == 0
    assert out[5, 5] == 0  # corner (3, 3) away: √18 > 3
    assert out[6, 6] == 1  # (2, 2) away: √8 ≤ 3


def test_shrink_does_not_eat_from_the_image_border() -> None:
    m = np.ones((6, 8), np.float32)
    assert np.array_equal(grow(m, -2), m)
    m[:, 0] = 0
    out = grow(m, -2)
    assert np.array_equal(out, rect_mask((8, 6), (3, 0, 8, 6)))


@FAST
@given(binary_masks(), st.integers(1, 6))
def test_grow_matches_brute_force(m: np.ndarray, r: int) -> None:
    d = brute_distance(m > 0)
    assert np.array_equal(grow(m, r) > 0, d <= r)
    # shrink is the dual: keep a pixel unless an unselected pixel lies within r
    assert np.array_equal(grow(m, -r) > 0, ~(brute_distance(m == 0) <= r))


@FAST
@given(binary_masks(), st.integers(-5, 5))
def test_soft_masks_take_the_grey_path_with_the_same_disk(m: np.ndarray, r: int) -> None:
    assert np.array_equal(grow(m * 0.5, r), grow(m, r) * 0.5)


def test_grow_zero_is_a_copy() -> None:
    m = np.eye(4, dtype=np.float32)
    out = grow(m, 0)
    assert np.array_equal(out, m) and out is not m


# --- feather --------------------------------------------------------------------------------------


def test_feather_exact_values_around_a_pixel() -> None:
    m = np.zeros((1, 11), np.float32)
    m[0, 5] = 1
    out = feather(m, 4)
    # d = 0, 1, 2, 3, 4, 5 -> s(1 - d/4) with s(t) = 3t² - 2t³
    expected = [1.0, 0.84375, 0.5, 0.15625, 0.0, 0.0]
    assert np.allclose(out[0, 5:], expected, atol=1e-6)
    assert np.array_equal(out[0, :6][::-1], out[0, 5:])
    assert out[0, 0] == 0.0 and out[0, 1] == 0.0  # exactly zero at d ≥ 4


@FAST
@given(binary_masks(20), st.floats(0, 8))
def test_feather_is_exactly_zero_beyond_its_width(m: np.ndarray, px: float) -> None:
    out = feather(m, px)
    d = brute_distance(m > 0)
    assert out.dtype == np.float32
    assert np.all(out[m == 1] == 1.0)
    assert np.all((out >= 0) & (out <= 1))
    assert np.all(out[(m == 0) & (d >= px)] == 0.0)
    assert np.all(out[(d > 0) & (d < px - 1e-3)] > 0)
    # never reaches past the mask grown by ceil(px)
    assert np.all(out[grow(m, max(0, math.ceil(px))) == 0] == 0)


def test_feather_decreases_with_distance() -> None:
    m = np.zeros((1, 30), np.float32)
    m[0, :5] = 1
    out = feather(m, 12)[0]
    assert np.all(np.diff(out[4:]) <= 0) and out[4] == 1 and out[17] == 0


def test_feather_below_one_pixel_changes_nothing() -> None:
    m = np.eye(5, dtype=np.float32)
    assert np.array_equal(feather(m, 0), m)
    assert np.array_equal(feather(m, 0.9), m)
    with pytest.raises(ValueError):
        feather(m, -1)


# --- bbox and components ------------------------------------------------------------------------


def test_bbox_is_half_open() -> None:
    m = np.zeros((10, 12), np.float32)
    assert bbox(m) is None
    m[2, 3] = 1
    assert bbox(m) == (3, 2, 4, 3)
    m[7, 10] = 0.2
    assert bbox(m) == (3, 2, 11, 8)


def test_components_are_8_connected_in_raster_order() -> None:
    m = np.zeros((10, 12), np.float32)
    m[6:8, 1:3] = 1  # second by first pixel
    m[1, 8] = 1
    m[2, 9] = 1  # diagonal neighbour: same region
    m[9, 11] = 1
    assert components(m) == [(8, 1, 10, 3), (1, 6, 3, 8), (11, 9, 12, 10)]
    assert components(np.zeros((3, 3))) == []


# --- crop_box -----------------------------------------------------------------------------------

W, H = 200, 120


@pytest.mark.parametrize(
    ("where", "mask_box", "kwargs", "expected"),
    [
        ("centre", (90, 50, 110, 70), {}, (80, 40, 120, 80)),
        ("top-left corner", (0, 0, 10, 10), {}, (0, 0, 32, 32)),
        ("top-right corner", (192, 0, 200, 6), {}, (176, 0, 200, 24)),
        ("bottom-left corner", (0, 115, 5, 120), {}, (0, 96, 24, 120)),
        ("bottom-right corner", (190, 110, 200, 120), {}, (168, 88, 200, 120)),
        ("top edge", (95, 0, 105, 4), {}, (84, 0, 116, 32)),
        ("bottom edge", (95, 116, 105, 120), {}, (84, 88, 116, 120)),
        ("left edge", (0, 55, 3, 65), {}, (0, 44, 32, 76)),
        ("right edge", (197, 55, 200, 65), {}, (168, 44, 200, 76)),
        ("larger than the image", (10, 10, 190, 110), {}, (0, 0, 200, 120)),
        ("wide mask, aspect 1", (60, 55, 140, 65), {}, (52, 12, 148, 108)),
        ("aspect 1.5", (90, 50, 110, 70), {"aspect": 1.5}, (72, 40, 128, 80)),
        (
            "aspect 0.75, min size",
            (90, 50, 110, 70),
            {"aspect": 0.75, "min_size": 64},
            (68, 16, 132, 104),
        ),
        ("multiple 64", (90, 50, 110, 70), {"multiple": 64}, (68, 28, 132, 92)),
        (
            "no padding, multiple 1",
            (90, 50, 110, 70),
            {"padding": 0, "multiple": 1},
            (90, 50, 110, 70),
        ),
    ],
)
def test_crop_box_geometry(where, mask_box, kwargs, expected) -> None:
    args = {"padding": 8, "image_size": (W, H), **kwargs}
    assert crop_box(rect_mask((W, H), mask_box), **args) == expected


def test_crop_box_uses_the_whole_axis_only_where_the_image_is_too_small() -> None:
    # 116 × 76 needed -> 120 × 120; the image is only 100 high
    box = crop_box(rect_mask((400, 100), (150, 20, 250, 80)), padding=8, image_size=(400, 100))
    assert box == (140, 0, 260, 100)


def test_crop_box_of_nothing_is_an_error() -> None:
    with pytest.raises(SdenhanceError, match="selects nothing"):
        crop_box(np.zeros((H, W)), padding=8, image_size=(W, H))
    with pytest.raises(ValueError):
        crop_box(np.ones((H, W)), padding=8, image_size=(H, W))


@st.composite
def crop_cases(draw):
    w, h = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    x0, x1 = (
        sorted(draw(st.lists(st.integers(0, w), min_size=2, max_size=2, unique=True)))
        if w > 1
        else (0, 1)
    )
    y0, y1 = (
        sorted(draw(st.lists(st.integers(0, h), min_size=2, max_size=2, unique=True)))
        if h > 1
        else (0, 1)
    )
    kwargs = {
        "padding": draw(st.integers(0, 64)),
        "aspect": draw(st.sampled_from([1.0, 0.75, 4 / 3, 1.5, 2 / 3, 16 / 9, 0.5])),
        "multiple": draw(st.sampled_from([1, 8, 64])),
        "min_size": draw(st.sampled_from([0, 64, 256])),
        "image_size": (w, h),
    }
    return rect_mask((w, h), (x0, y0, x1, y1)), (x0, y0, x1, y1), kwargs


@settings(max_examples=300, deadline=None)
@given(crop_cases())
def test_crop_box_guarantees(case) -> None:
    mask, (mx0, my0, mx1, my1), kw = case
    w, h = kw["image_size"]
    pad, mult, aspect, min_size = kw["padding"], kw["multiple"], kw["aspect"], kw["min_size"]
    x0, y0, x1, y1 = crop_box(mask, **kw)
    bw, bh = x1 - x0, y1 - y0
    # inside the image, holding the padded mask box clipped to the image
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert x0 <= max(mx0 - pad, 0) and x1 >= min(mx1 + pad, w)
    assert y0 <= max(my0 - pad, 0) and y1 >= min(my1 + pad, h)
    full_x, full_y = bw == w, bh == h
    # sides: multiples of `multiple`, big enough, unless that axis is the whole image
    assert full_x or (bw % mult == 0 and bw >= max(mx1 - mx0 + 2 * pad, min_size))
    assert full_y or (bh % mult == 0 and bh >= max(my1 - my0 + 2 * pad, min_size))
    if not (full_x or full_y):
        assert abs(bw - aspect * bh) < mult * max(1.0, aspect)
        if aspect == 1.0:
            assert bw == bh
        # not needlessly large: one multiple more would not be needed on the binding axis
        need_h = max(my1 - my0 + 2 * pad, min_size, (max(mx1 - mx0 + 2 * pad, min_size)) / aspect)
        assert bh < need_h + mult


# --- crop_boxes ---------------------------------------------------------------------------------


def test_far_apart_regions_get_their_own_crops() -> None:
    m = rect_mask((400, 300), (20, 20, 40, 40)) + rect_mask((400, 300), (340, 240, 360, 260))
    boxes = crop_boxes(m, padding=8, image_size=(400, 300))
    assert boxes == [(10, 10, 50, 50), (330, 230, 370, 270)]


def test_regions_whose_padded_boxes_overlap_are_merged() -> None:
    m = rect_mask((400, 300), (20, 20, 40, 40)) + rect_mask((400, 300), (50, 20, 70, 40))
    # 10 px apart, padding 8: padded boxes overlap; the union needs 66 -> 72 px, shifted down
    assert crop_boxes(m, padding=8, image_size=(400, 300)) == [(9, 0, 81, 72)]


def test_close_regions_merge_when_the_union_is_no_dearer() -> None:
    a, b = (20, 20, 40, 40), (80, 20, 100, 40)
    m = rect_mask((400, 300), a) + rect_mask((400, 300), b)
    # separately 40² + 40² = 3200; together 96² = 9216: kept apart
    assert len(crop_boxes(m, padding=8, image_size=(400, 300))) == 2
    # with a minimum crop of 128 each would be 128²; together still 128²: merged
    merged = crop_boxes(m, padding=8, image_size=(400, 300), min_size=128)
    assert len(merged) == 1 and merged[0] == crop_box(
        m, padding=8, image_size=(400, 300), min_size=128
    )


def test_merging_cascades() -> None:
    # a and b merge; their union then overlaps c when padded
    size = (600, 200)
    m = (
        rect_mask(size, (10, 90, 30, 110))
        + rect_mask(size, (40, 90, 60, 110))
        + rect_mask(size, (75, 90, 95, 110))
    )
    m += rect_mask(size, (500, 10, 510, 20))
    boxes = crop_boxes(m, padding=8, image_size=size)
    assert boxes == [
        (489, 0, 521, 32),
        crop_box(rect_mask(size, (10, 90, 95, 110)), padding=8, image_size=size),
    ]


def test_each_crop_carries_only_its_own_regions() -> None:
    size = (200, 200)
    a, b = (20, 0, 120, 10), (60, 105, 64, 109)
    m = rect_mask(size, a) + rect_mask(size, b)
    groups = crop_groups(m, padding=4, image_size=size)
    # a's square crop reaches down over b, yet merging would cost 120² > 112² + 16²
    assert [box for box, _ in groups] == [(14, 0, 126, 112), (54, 99, 70, 115)]
    assert crop_boxes(m, padding=4, image_size=size) == [box for box, _ in groups]
    (box_a, own_a), (box_b, own_b) = groups
    assert crop(m, box_a)[105:109, 46:50].all()  # b is inside a's crop...
    assert np.array_equal(own_a, crop(rect_mask(size, a), box_a))  # ...but not in a's mask
    assert np.array_equal(own_b, crop(rect_mask(size, b), box_b))
    assert own_a.dtype == own_b.dtype == np.float32


def test_speckle_gets_one_crop() -> None:
    m = np.zeros((200, 200), np.float32)
    m[::10, ::10] = 1  # 400 isolated pixels
    assert len(components(m)) > crops.MAX_REGIONS
    assert crop_boxes(m, padding=0, multiple=1, image_size=(200, 200)) == [(0, 0, 191, 191)]


@FAST
@given(binary_masks(60), st.integers(0, 16), st.sampled_from([1, 8]))
def test_every_region_lies_in_a_crop_that_obeys_crop_box(
    m: np.ndarray, pad: int, mult: int
) -> None:
    h, w = m.shape
    if not m.any():
        return
    groups = crop_groups(m, padding=pad, multiple=mult, image_size=(w, h))
    boxes = [box for box, _ in groups]
    assert boxes == sorted(boxes, key=lambda b: (b[1], b[0], b[3], b[2]))
    # the groups' own masks, pasted back, add up to the mask: every pixel in exactly one group
    total = np.zeros_like(m)
    for box, own in groups:
        total = paste(total, crop(total, box) + own, box)
    assert np.array_equal(total, m)
    for x0, y0, x1, y1 in components(m):
        assert any(
            b[0] <= max(x0 - pad, 0)
            and b[1] <= max(y0 - pad, 0)
            and b[2] >= min(x1 + pad, w)
            and b[3] >= min(y1 + pad, h)
            for b in boxes
        )
    for b in boxes:
        bw, bh = b[2] - b[0], b[3] - b[1]
        assert 0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h
        assert bw == w or bh == h or bw == bh


# --- crop and paste -----------------------------------------------------------------------------


def test_crop_and_paste_round_trip() -> None:
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    box = (2, 1, 6, 4)
    patch = crop(img, box)
    assert patch.shape == (3, 4, 3)
    assert np.array_equal(patch, img[1:4, 2:6])
    patch[:] = 7  # a copy: the source is untouched
    assert img[1, 2, 0] != 7
    out = paste(img, patch, box)
    assert np.array_equal(out[1:4, 2:6], patch) and out is not img
    outside = np.ones((6, 8), bool)
    outside[1:4, 2:6] = False
    assert np.array_equal(out[outside], img[outside])


def test_paste_blend_exact_values() -> None:
    dst = np.full((1, 4, 3), 100, np.uint8)
    patch = np.full((1, 4, 3), 200, np.uint8)
    m = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    out = paste(dst, patch, (0, 0, 4, 1), blend_mask=m)
    assert out[0, :, 0].tolist() == [100, 125, 150, 200]
    # float images blend without rounding
    outf = paste(dst.astype(np.float32) / 255, patch.astype(np.float32) / 255, (0, 0, 4, 1), m)
    assert np.allclose(outf[0, :, 0] * 255, [100, 125, 150, 200], atol=1e-4)


def test_paste_rejects_mismatches() -> None:
    dst = np.zeros((6, 8, 3), np.uint8)
    with pytest.raises(ValueError):
        paste(dst, np.zeros((2, 2, 3), np.uint8), (0, 0, 3, 3))
    with pytest.raises(ValueError):
        paste(dst, np.zeros((3, 3, 3), np.float32), (0, 0, 3, 3))
    with pytest.raises(ValueError):
        paste(dst, np.zeros((3, 3, 3), np.uint8), (6, 0, 9, 3))
    with pytest.raises(ValueError):
        paste(dst, np.zeros((3, 3, 3), np.uint8), (0, 0, 3, 3), np.full((3, 3), 1.5))


@st.composite
def paste_cases(draw, dtype):
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    y0, y1 = (
        sorted(draw(st.lists(st.integers(0, h), min_size=2, max_size=2, unique=True)))
        if h > 1
        else (0, 1)
    )
    x0, x1 = (
        sorted(draw(st.lists(st.integers(0, w), min_size=2, max_size=2, unique=True)))
        if w > 1
        else (0, 1)
    )
    channels = draw(st.sampled_from([(), (3,)]))
    if dtype == np.uint8:
        elem = st.integers(0, 255)
    else:
        elem = st.floats(0, 1, width=32)
    dst = draw(arrays(dtype, (h, w, *channels), elements=elem))
    patch = draw(arrays(dtype, (y1 - y0, x1 - x0, *channels), elements=elem))
    weights = st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1, width=32), st.just(1e-30))
    m = draw(arrays(np.float32, (y1 - y0, x1 - x0), elements=weights))
    return dst, patch, (x0, y0, x1, y1), m


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_paste_is_bit_identical_where_the_blend_mask_is_zero(dtype) -> None:
    @settings(max_examples=150, deadline=None)
    @given(paste_cases(dtype))
    def check(case) -> None:
        dst, patch, box, m = case
        x0, y0, x1, y1 = box
        out = paste(dst, patch, box, blend_mask=m)
        assert out.dtype == dst.dtype and out.shape == dst.shape
        full = np.zeros(dst.shape[:2], np.float32)
        full[y0:y1, x0:x1] = m
        assert np.array_equal(out[full == 0], dst[full == 0])  # outside the box too
        inside = out[y0:y1, x0:x1]
        assert np.array_equal(inside[m == 1], patch[m == 1])
        lo, hi = np.minimum(dst[y0:y1, x0:x1], patch), np.maximum(dst[y0:y1, x0:x1], patch)
        assert np.all(inside >= lo) and np.all(inside <= hi)

    check()


@FAST
@given(
    st.integers(1, 16).flatmap(
        lambda h: st.tuples(
            arrays(np.uint8, (h, 9, 3)),
            arrays(np.uint8, (h, 9, 3)),
            arrays(np.float32, (h, 9), elements=st.sampled_from([0.0, 0.0, 1.0, 0.5, 1e-7, 0.999])),
        )
    )
)
def test_composite_exact_keeps_every_unmasked_pixel(case) -> None:
    original, generated, m = case
    out = composite_exact(original, generated, m)
    assert out.dtype == np.uint8
    assert np.array_equal(out[m == 0], original[m == 0])
    assert np.array_equal(out[m == 1], generated[m == 1])
    expected = np.rint(
        original * (1.0 - m[..., None].astype(np.float64))
        + generated * m[..., None].astype(np.float64)
    )
    assert np.array_equal(out, expected.astype(np.uint8))


def test_composite_exact_takes_only_uint8() -> None:
    a = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError):
        composite_exact(a.astype(np.float32), a.astype(np.float32), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        composite_exact(a, np.zeros((3, 2, 3), np.uint8), np.zeros((2, 2)))
