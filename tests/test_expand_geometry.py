"""Expansion geometry, pure: canvas and placement for every way of asking, the seam blend, the
mirror fill, and the windows that step outward (written out in full for known cases, checked
as properties on a table of others)."""

from __future__ import annotations

import numpy as np
import pytest

from sdenhance.errors import SdenhanceError
from sdenhance.ops.expand_geometry import (
    ANCHORS,
    Placement,
    mirror_fill,
    new_area,
    parse_aspect,
    placement,
    seam_blend,
)
from sdenhance.ops.expand_windows import MAX_WINDOWS, context_px, plan_windows

# --- canvas and placement -----------------------------------------------------------------------


def test_px_per_side_place_the_original_exactly() -> None:
    placed = placement((96, 80), sides=(10, 20, 30, 40))
    assert placed == Placement((136, 140), (10, 20, 106, 100))
    assert placed.margins == (10, 20, 30, 40)


@pytest.mark.parametrize(
    ("size", "aspect", "canvas"),
    [
        ((96, 80), "16:9", (142, 80)),  # 80 × 16/9 = 142.2
        ((96, 80), "1:1", (96, 96)),
        ((80, 96), "16:9", (171, 96)),  # 96 × 16/9 = 170.7
        ((1000, 500), "4:3", (1000, 750)),  # too wide for 4:3: the height grows
        ((512, 512), "2.39:1", (1224, 512)),  # 512 × 2.39 = 1223.7
        ((512, 512), "9x16", (512, 910)),  # 512 × 16/9 = 910.2
        ((300, 200), "2", (400, 200)),
    ],
)
def test_aspect_grows_the_short_side_only(size, aspect, canvas) -> None:
    assert placement(size, aspect=aspect).canvas == canvas


@pytest.mark.parametrize(
    ("anchor", "box"),
    [
        ("center", (50, 25, 150, 75)),
        ("top-left", (0, 0, 100, 50)),
        ("top", (50, 0, 150, 50)),
        ("top-right", (100, 0, 200, 50)),
        ("left", (0, 25, 100, 75)),
        ("right", (100, 25, 200, 75)),
        ("bottom-left", (0, 50, 100, 100)),
        ("bottom", (50, 50, 150, 100)),
        ("bottom-right", (100, 50, 200, 100)),
    ],
)
def test_anchor_places_the_original(anchor, box) -> None:
    assert placement((100, 50), width=200, height=100, anchor=anchor) == Placement((200, 100), box)
    assert set(ANCHORS) >= {anchor}


def test_odd_margins_put_the_extra_pixel_after_the_original() -> None:
    assert placement((10, 10), width=13, anchor="center").box == (1, 0, 11, 10)
    assert placement((10, 10), height=15, anchor="left").box == (0, 2, 10, 12)


def test_one_of_width_or_height_keeps_the_other_side() -> None:
    assert placement((96, 80), width=200, anchor="left").canvas == (200, 80)
    assert placement((96, 80), height=100, anchor="top").canvas == (96, 100)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"width": 90}, "smaller than the image"),
        ({"width": 200, "height": 79}, "smaller than the image"),
        ({"width": 96}, "no side grows"),
        ({"aspect": "6:5"}, "already has that aspect"),
        ({}, "no side grows"),
    ],
)
def test_placements_that_do_not_grow_are_refused(kwargs, words) -> None:
    with pytest.raises(SdenhanceError, match=words):
        placement((96, 80), **kwargs)


@pytest.mark.parametrize(
    "text", ["abc", "16:0", "0:9", "1:40", "40:1", "nan", "inf", "-16:9", "16:9:1", ""]
)
def test_bad_aspects_are_refused(text) -> None:
    with pytest.raises(SdenhanceError, match="`aspect` must be W:H"):
        parse_aspect(text)


def test_aspect_notations() -> None:
    assert parse_aspect("16:9") == pytest.approx(16 / 9)
    assert parse_aspect(" 3 / 2 ") == 1.5 and parse_aspect("4x5") == 0.8
    assert parse_aspect("1.5") == 1.5


# --- masks and the mirror fill ------------------------------------------------------------------


def test_seam_blend_ramps_into_the_original_on_grown_sides_only() -> None:
    placed = placement((40, 30), sides=(0, 0, 20, 10))  # right and bottom grow
    blend = seam_blend(placed, 8)
    new = new_area(placed) > 0
    assert np.all(blend[new] == 1.0)
    inside = blend[:30, :40]
    assert np.all(inside[:, :32][:22] == 0.0)  # ≥ 8 px from both grown sides: untouched
    row = inside[5, 32:40]  # towards the right edge (8 px to 1 px away): rises strictly
    assert row[0] == 0 and np.all(np.diff(row) > 0) and row[-1] < 1
    column = inside[20:30, 5]  # towards the bottom edge
    assert np.all(np.diff(column[2:]) > 0) and 0 < column[-1] < 1
    assert np.all(seam_blend(placed, 0)[:30, :40] == 0.0)  # no seam: the original is whole


def test_mirror_fill_reflects_at_each_edge_and_repeats_past_the_image() -> None:
    rgb = np.array([[[1], [2], [3]]], np.uint8)  # one row of three pixels, one channel
    placed = placement((3, 1), sides=(2, 0, 5, 0))
    filled = mirror_fill(rgb, placed)[0, :, 0]
    assert filled.tolist() == [2, 1, 1, 2, 3, 3, 2, 1, 1, 2]


# --- windows ------------------------------------------------------------------------------------


def test_windows_of_a_512_to_1536_expansion() -> None:
    """The original centred in a 1536 px wide canvas, 512 px windows: each side takes two,
    the first reaching 32 (seam) + 192 (context) px into the original, the next 192 px back
    into the first; nearest the original first."""
    placed = placement((512, 512), width=1536)
    assert context_px(512, 32) == 192
    windows = plan_windows(placed.canvas, placed.box, 512, 32)
    assert windows == [
        (224, 0, 736, 512),
        (800, 0, 1312, 512),
        (0, 0, 512, 512),
        (1024, 0, 1536, 512),
    ]


def test_a_small_original_is_painted_first_with_all_of_it_in_view() -> None:
    placed = placement((128, 96), width=1024, height=512)  # smaller than a window both ways
    windows = plan_windows(placed.canvas, placed.box, 512, 32)
    assert windows[0] == (256, 0, 768, 512)  # centred on the original at x 448–576
    assert windows[1:] == [(0, 0, 512, 512), (512, 0, 1024, 512)]


def paint_order_problems(placed: Placement, native: int, seam: int) -> list[str]:
    """Check the windows: inside the canvas, at most native, each with a new pixel, each
    overlapping content painted before it, and all of them covering the new area and band."""
    windows = plan_windows(placed.canvas, placed.box, native, seam)
    region = seam_blend(placed, seam) > 0
    painted = ~region  # the original beyond the band
    kept = int(painted.sum())  # (all of it in view suffices for a tiny original)
    new = new_area(placed) > 0
    w, h = placed.canvas
    problems = []
    for n, (x0, y0, x1, y1) in enumerate(windows):
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            problems.append(f"window {n} outside the canvas")
        if x1 - x0 > native or y1 - y0 > native:
            problems.append(f"window {n} larger than native")
        if not new[y0:y1, x0:x1].any():
            problems.append(f"window {n} paints no new pixel")
        if painted[y0:y1, x0:x1].sum() < min(8 * min(x1 - x0, y1 - y0), kept):
            problems.append(f"window {n} sees too little painted content")
        painted[y0:y1, x0:x1] = True
    if not painted.all():
        problems.append("new pixels left unpainted")
    return problems


@pytest.mark.parametrize(
    ("size", "ask", "native", "seam"),
    [
        ((512, 512), {"width": 1536, "height": 1536}, 512, 32),
        ((512, 512), {"sides": (0, 0, 2000, 0)}, 512, 32),
        ((512, 512), {"sides": (700, 0, 0, 900)}, 512, 0),
        ((1500, 400), {"aspect": "1:1", "anchor": "bottom"}, 512, 64),
        ((96, 80), {"sides": (0, 16, 64, 0)}, 64, 32),
        ((96, 80), {"aspect": "21:9", "anchor": "right"}, 64, 8),
        ((2048, 1024), {"sides": (1, 1, 1, 1)}, 1024, 1),
        ((700, 900), {"width": 3000, "height": 1000, "anchor": "top-left"}, 1024, 256),
        ((40, 30), {"sides": (150, 150, 150, 150)}, 64, 8),
    ],
)
def test_windows_step_outward_and_cover_everything(size, ask, native, seam) -> None:
    placed = placement(size, **ask)
    assert paint_order_problems(placed, native, seam) == []


def test_windows_along_a_strip_move_away_from_the_original() -> None:
    placed = placement((512, 512), sides=(1500, 0, 1500, 0))
    windows = plan_windows(placed.canvas, placed.box, 512, 32)
    right = [x0 for x0, _, _, _ in windows if x0 >= 1500]
    left = [x1 for _, _, x1, _ in windows if x1 <= 2012 and x1 < 1800]
    assert right == sorted(right) and len(right) >= 4
    assert left == sorted(left, reverse=True) and len(left) >= 4


def test_too_many_windows_and_too_deep_a_seam_are_refused() -> None:
    placed = placement((64, 64), sides=(2000, 2000, 2000, 2000))
    with pytest.raises(SdenhanceError, match=f"at most {MAX_WINDOWS}"):
        plan_windows(placed.canvas, placed.box, 64, 8)
    with pytest.raises(SdenhanceError, match="`seam` must be at most half"):
        plan_windows((128, 64), (0, 0, 64, 64), 64, 40)
