"""PSNR, SSIM, mean CIEDE2000 and `compare` (ops.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage import data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sdenhance.errors import SdenhanceError
from sdenhance.ops.metrics import compare, delta_e, psnr, ssim
from sdenhance.ops.resize import resize

FAST = settings(max_examples=30, deadline=None)


@st.composite
def pairs(draw, min_side: int = 7, max_side: int = 16):
    """Two float64 images of one shape, (H, W, 3) or (H, W)."""
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    shape = (h, w, 3) if draw(st.booleans()) else (h, w)
    a = draw(arrays(np.float64, shape, elements=st.floats(0, 1)))
    b = draw(arrays(np.float64, shape, elements=st.floats(0, 1)))
    return a, b


def photo(name: str = "coffee") -> np.ndarray:
    return getattr(data, name)()[::2, ::2].astype(np.float64) / 255


# ----------------------------------------------------------------------------------------------
# exact cases


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (np.zeros((4, 4)), np.full((4, 4), 0.1), 20.0),  # MSE 0.01
        (np.zeros((2, 3, 3)), np.ones((2, 3, 3)), 0.0),  # MSE 1
        (np.full((5, 5), 0.5), np.full((5, 5), 0.5), math.inf),
    ],
)
def test_psnr_exact(a, b, expected):
    assert psnr(a, b) == pytest.approx(expected)


def test_ssim_of_identical_images_is_one_and_small_images_work():
    image = np.random.default_rng(0).random((3, 5, 3))
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(image[..., 0], image[..., 1]) < 1.0
    with pytest.raises(SdenhanceError, match="at least 3×3"):
        ssim(np.zeros((2, 9)), np.zeros((2, 9)))


def test_delta_e_of_flat_colours_is_ciede2000_of_the_colours():
    red, orange = np.array([0.8, 0.1, 0.1]), np.array([0.8, 0.4, 0.1])
    a, b = np.broadcast_to(red, (6, 7, 3)), np.broadcast_to(orange, (6, 7, 3))
    expected = deltaE_ciede2000(rgb2lab(red[None, None]), rgb2lab(orange[None, None]))[0, 0]
    assert delta_e(a, b) == pytest.approx(expected, rel=1e-9)
    assert delta_e(a, b, sigma=0) == pytest.approx(expected, rel=1e-9)
    assert delta_e(a, a) == 0.0


def test_delta_e_low_pass_discounts_fine_texture_not_casts():
    image = photo()
    texture = np.random.default_rng(1).normal(0, 0.03, image.shape[:2])[..., None]
    noisy = np.clip(image + texture, 0, 1)
    warm = np.clip(image * [1.05, 1.0, 0.9], 0, 1)
    # blurring removes most of the texture's difference but none of the cast's
    assert delta_e(image, noisy) < 0.6 * delta_e(image, noisy, sigma=0)
    assert delta_e(image, warm) == pytest.approx(delta_e(image, warm, sigma=0), rel=0.1)


def test_grey_images_are_compared_as_neutral_colour():
    a = np.full((8, 8), 0.3)
    b = np.full((8, 8), 0.6)
    assert delta_e(a, b) == pytest.approx(delta_e(np.dstack([a] * 3), np.dstack([b] * 3)))
    report = compare(a, np.dstack([b] * 3))
    assert report["delta_e"] == pytest.approx(delta_e(a, b))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3))), "differ in shape"),
        (lambda: ssim(np.zeros((8, 8, 4)), np.zeros((8, 8, 4))), r"\(H, W, 3\) or \(H, W\)"),
        (
            lambda: delta_e(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), sigma=-1),
            "`sigma` must be ≥ 0",
        ),
    ],
)
def test_errors(call, message):
    with pytest.raises(SdenhanceError, match=message):
        call()


# ----------------------------------------------------------------------------------------------
# agreement with scikit-image


@FAST
@given(pairs())
def test_psnr_and_ssim_agree_with_skimage_exactly(pair):
    a, b = pair
    axis = -1 if a.ndim == 3 else None
    report = compare(a, b)
    if np.array_equal(a, b):
        assert report["psnr"] == math.inf
    else:
        assert report["psnr"] == peak_signal_noise_ratio(a, b, data_range=1.0)
    assert report["ssim"] == structural_similarity(a, b, data_range=1.0, channel_axis=axis)
    assert report["resampled"] is False


@FAST
@given(pairs(min_side=3))
def test_delta_e_is_symmetric_and_non_negative(pair):
    a, b = pair
    assert delta_e(a, b) >= 0.0
    assert delta_e(a, b) == pytest.approx(delta_e(b, a), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_compare_on_photos_agrees_with_skimage(name):
    a = photo(name)
    b = np.clip(a + np.random.default_rng(2).normal(0, 0.05, a.shape), 0, 1)
    report = compare(a, b)
    assert report["psnr"] == peak_signal_noise_ratio(a, b, data_range=1.0)
    assert report["ssim"] == structural_similarity(a, b, data_range=1.0, channel_axis=-1)
    assert report["delta_e"] == delta_e(a, b)
    assert 20 < report["psnr"] < 30 and 0 < report["ssim"] < 1


def test_compare_resamples_b_and_says_so():
    a = photo("chelsea")  # 150 × 226
    small = resize(a, (113, 75), "area").astype(np.float64)
    report = compare(a, small)
    assert report["resampled"] is True
    assert report["size_a"] == (226, 150) and report["size_b"] == (113, 75)
    b = np.clip(resize(small, (226, 150), "lanczos"), 0, 1).astype(np.float64)
    assert report["psnr"] == peak_signal_noise_ratio(a, b, data_range=1.0)
    assert report["ssim"] == structural_similarity(a, b, data_range=1.0, channel_axis=-1)
    assert report["delta_e"] < 3.0  # a downscale keeps the colours
