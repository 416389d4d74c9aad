"""Offline fills on real photos: exact outside the hole, texture inside, bounded work, hostile masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import color, data

from sdenhance.errors import SdenhanceError
from sdenhance.ops import fill
from sdenhance.ops.fill import fill_region, work_boxes

RED = np.array([230, 20, 20], np.uint8)


def photo(name: str) -> np.ndarray:
    img = getattr(data, name)()
    return np.ascontiguousarray(np.dstack([img] * 3) if img.ndim == 2 else img[..., :3])


def disc(shape, cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def painted(truth: np.ndarray, hole: np.ndarray) -> np.ndarray:
    out = truth.copy()
    out[hole] = RED
    return out


def gradient_rms(rgb: np.ndarray, where: np.ndarray) -> float:
    grey = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
    gy, gx = np.gradient(grey)
    return float(np.sqrt((gx**2 + gy**2)[where].mean()))


def texture(rgb: np.ndarray, hole: np.ndarray) -> float:
    """Gradient RMS 3 px inside the hole over that of the 16-px ring around it."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    inside = cv2.erode(hole.astype(np.uint8), k) > 0
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((33, 33), np.uint8)) > 0
    return gradient_rms(rgb, inside) / gradient_rms(rgb, ring & ~hole)


def de2000(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    la, lb = (color.rgb2lab(x[where][None].astype(np.float64) / 255) for x in (a, b))
    return float(color.deltaE_ciede2000(la, lb).mean())


@pytest.fixture
def spy(monkeypatch) -> list[tuple[int, int]]:
    """Records the (height, width) of every image handed to PyPatchMatch, which still runs."""
    import patchmatch

    calls: list[tuple[int, int]] = []
    real = patchmatch.inpaint

    def recording(image, mask, **kwargs):
        calls.append(image.shape[:2])
        return real(image, mask, **kwargs)

    monkeypatch.setattr(patchmatch, "inpaint", recording)
    return calls


# --- the promise: outside the hole nothing changes ------------------------------------------------


@pytest.mark.parametrize("method", fill.METHODS)
def test_pixels_outside_the_hole_are_bit_identical(method) -> None:
    truth = photo("coffee")
    rng = np.random.default_rng(5)
    hole = disc(truth.shape, 300, 200, 40) | disc(truth.shape, 590, 10, 30)  # one at a corner
    hole[rng.integers(0, 400, 300), rng.integers(0, 600, 300)] = True  # scattered pixels
    hole[100, :] = True  # a line across the whole image
    image = painted(truth, hole)
    out = fill_region(image, hole, method=method, radius=fill.DEFAULT_RADIUS[method], seed=1)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~hole], image[~hole])
    assert not np.any(np.all(out[hole] == RED, axis=-1))  # nothing of the object is copied


# --- texture ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cx", "cy", "r"), [("brick", 256, 256, 50), ("coffee", 520, 90, 40)]
)
def test_patchmatch_fills_with_texture_where_diffusion_smears(name, cx, cy, r) -> None:
    truth = photo(name)
    hole = disc(truth.shape, cx, cy, r)
    image = painted(truth, hole)
    reference = texture(truth, hole)  # the photo's own grain there, about 1
    patch = fill_region(image, hole, method="patchmatch", radius=3, seed=0)
    telea = fill_region(image, hole, method="telea", radius=5)
    assert 0.7 * reference < texture(patch, hole) < 1.4 * reference
    assert texture(telea, hole) < 0.4 * reference  # the smear
    assert de2000(patch, truth, hole) < 1.1 * de2000(telea, truth, hole)  # colour as close


def test_same_seed_same_fill() -> None:
    truth = photo("grass")
    hole = disc(truth.shape, 256, 256, 40)
    image = painted(truth, hole)
    a, b, c = (fill_region(image, hole, method="patchmatch", radius=3, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_near_context_only_no_face_pasted_over_the_shuttle(spy) -> None:
    """The astronaut's face lies 90+ px from the shuttle: it must not be a source."""
    truth = photo("astronaut")
    hole = np.zeros(truth.shape[:2], bool)
    hole[0:290, 350:475] = True  # the shuttle model and its stand
    out = fill_region(painted(truth, hole), hole, method="patchmatch", radius=3, seed=0)
    [(h, w)] = spy
    assert w <= 125 + 2 * fill.CONTEXT and h <= 290 + fill.CONTEXT
    skin = cv2.inRange(cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb), (0, 140, 77), (255, 173, 127)) > 0
    assert skin[hole].mean() < 0.01


# --- bounded work ----------------------------------------------------------------------------------


def test_a_large_hole_is_filled_at_a_bounded_size(monkeypatch, spy) -> None:
    monkeypatch.setattr(fill, "WORK_PIXELS", 60_000)
    truth = cv2.resize(photo("astronaut"), (1200, 1200), interpolation=cv2.INTER_CUBIC)
    hole = np.zeros(truth.shape[:2], bool)
    hole[200:1000, 150:1050] = True
    image = painted(truth, hole)
    out = fill_region(image, hole, method="patchmatch", radius=3, seed=0)
    assert len(spy) == 1 and spy[0][0] * spy[0][1] <= 60_000
    assert np.array_equal(out[~hole], image[~hole])
    assert not np.any(np.all(out[hole] == RED, axis=-1))


def test_all_boxes_together_stay_within_the_total(monkeypatch, spy) -> None:
    monkeypatch.setattr(fill, "TOTAL_PIXELS", 60_000)
    truth = photo("astronaut")
    hole = np.zeros(truth.shape[:2], bool)
    for cy in (60, 250, 440):
        for cx in (60, 250, 440):
            hole[cy - 20 : cy + 20, cx - 20 : cx + 20] = True  # 9 groups, 190 px apart
    out = fill_region(painted(truth, hole), hole, method="patchmatch", radius=3, seed=0)
    assert len(spy) == 9
    assert sum(h * w for h, w in spy) <= 60_000
    assert np.array_equal(out[~hole], truth[~hole])


def test_very_many_groups_become_one_box(monkeypatch, spy) -> None:
    monkeypatch.setattr(fill, "MAX_BOXES", 20)
    truth = photo("grass")
    hole = np.zeros(truth.shape[:2], bool)
    hole[30::110, 30::110] = True  # 25 dots, further apart than two contexts
    out = fill_region(painted(truth, hole), hole, method="patchmatch", radius=2, seed=0)
    assert len(spy) == 1
    assert np.array_equal(out[~hole], truth[~hole])
    monkeypatch.setattr(fill, "MAX_BOXES", 25)
    spy.clear()
    fill_region(painted(truth, hole), hole, method="patchmatch", radius=2, seed=0)
    assert len(spy) == 25
    assert np.array_equal(out[~hole], truth[~hole])


def test_work_boxes_are_disjoint_and_hold_the_hole_with_context() -> None:
    hole = np.zeros((600, 800), bool)
    hole[100:140, 100:140] = True
    hole[100:140, 170:200] = True  # 30 px from the first: same group
    hole[400:420, 600:700] = True
    hole[590:600, 0:20] = True  # at a corner
    boxes = work_boxes(hole)
    assert len(boxes) == 3
    cover = np.zeros(hole.shape, int)
    for x0, y0, x1, y1 in boxes:
        cover[y0:y1, x0:x1] += 1
    assert cover.max() == 1 and cover[hole].min() == 1
    near = cv2.dilate(hole.astype(np.uint8), np.ones((2 * fill.CONTEXT + 1,) * 2, np.uint8))
    assert cover[near > 0].min() == 1  # every pixel within CONTEXT of the hole is searched


# --- hostile masks and arguments -------------------------------------------------------------------


@pytest.mark.parametrize("method", fill.METHODS)
def test_empty_hole_returns_the_image_and_a_full_one_is_refused(method) -> None:
    image = photo("coffee")[:64, :64]
    empty = fill_region(image, np.zeros((64, 64)), method=method, radius=3)
    assert np.array_equal(empty, image) and empty is not image
    with pytest.raises(SdenhanceError, match="whole image"):
        fill_region(image, np.ones((64, 64)), method=method, radius=3)


@pytest.mark.parametrize(
    "shape_and_hole",
    [
        ((1, 2), (0, 0)),  # one known pixel to fill from
        ((3, 1), (1, 0)),
        ((2, 700), (1, slice(0, 699))),  # all but one pixel of a row
    ],
)
def test_tiny_and_thin_images(shape_and_hole) -> None:
    shape, index = shape_and_hole
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    hole = np.zeros(shape, bool)
    hole[index] = True
    out = fill_region(image, hole, method="patchmatch", radius=3, seed=0)
    assert out.shape == image.shape and np.array_equal(out[~hole], image[~hole])


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"method": "blur", "radius": 3}, SdenhanceError, "unknown fill method"),
        ({"method": "patchmatch", "radius": 17}, SdenhanceError, "radius"),
        ({"method": "telea", "radius": 0}, SdenhanceError, "radius"),
    ],
)
def test_bad_arguments(kwargs, error, word) -> None:
    image = photo("coffee")[:32, :32]
    hole = np.zeros((32, 32), bool)
    hole[10:20, 10:20] = True
    with pytest.raises(error, match=word):
        fill_region(image, hole, **kwargs)
    with pytest.raises(ValueError, match="uint8"):
        fill_region(image.astype(np.float32), hole, method="telea", radius=3)
    with pytest.raises(ValueError, match="shape"):
        fill_region(image, hole[:20], method="telea", radius=3)


def test_missing_library_is_a_user_error_with_the_way_out(monkeypatch) -> None:
    monkeypatch.setattr(fill, "patchmatch_available", lambda: False)
    image = photo("coffee")[:32, :32]
    hole = np.zeros((32, 32), bool)
    hole[10:20, 10:20] = True
    with pytest.raises(SdenhanceError, match="PyPatchMatch") as info:
        fill_region(image, hole, method="patchmatch", radius=3)
    assert "--method telea" in str(info.value.hint)
    assert np.array_equal(  # the other methods do not need it
        fill_region(image, hole, method="telea", radius=3)[~hole], image[~hole]
    )
