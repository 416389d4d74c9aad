"""Deblur: PSFs, their estimation from edges, Wiener deconvolution with ringing control, stage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from sdenhance import Enhancer, SdenhanceError
from sdenhance.api import build_options
from sdenhance.ops import deblur
from sdenhance.ops.metrics import psnr


def crop(rgb: np.ndarray, side: int = 256) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.ascontiguousarray(
        rgb[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
    )


@pytest.fixture(scope="module", params=["astronaut", "coffee"])
def photo(request) -> np.ndarray:
    return crop(getattr(data, request.param)())


def blur(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    out = cv2.filter2D(rgb.astype(np.float64), -1, kernel, borderType=cv2.BORDER_REFLECT)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def as_float(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) / 255.0


# --- PSFs ---------------------------------------------------------------------------------------


def test_gaussian_psf_is_normalised_symmetric_and_3_sigma_wide():
    k = deblur.gaussian_psf(1.5)
    assert k.shape == (11, 11) and k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])
    ys, xs = np.mgrid[-5:6, -5:6]
    assert float((k * xs**2).sum()) == pytest.approx(1.5**2, rel=0.02)


def test_motion_psf_of_whole_horizontal_length_is_an_exact_box():
    k = deblur.motion_psf(7, 0.0)
    expected = np.zeros((9, 9))
    expected[4, 1:8] = 1 / 7
    np.testing.assert_allclose(k, expected, atol=1e-12)
    np.testing.assert_allclose(deblur.motion_psf(7, 90.0), expected.T, atol=1e-12)


@pytest.mark.parametrize("length,angle", [(9, 30.0), (5.5, 120.0), (12, 45.0)])
def test_motion_psf_has_its_length_and_direction(length, angle):
    k = deblur.motion_psf(length, angle)
    assert k.sum() == pytest.approx(1.0)
    c = k.shape[0] // 2
    ys, xs = np.mgrid[-c : c + 1, -c : c + 1]
    d = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    along = xs * d[0] + ys * d[1]
    # a uniform line of length L has variance L²/12 along it (binning adds 1/12 px²)
    assert float((k * along**2).sum()) == pytest.approx(length**2 / 12, rel=0.1, abs=0.1)
    assert float((k * (xs * d[1] - ys * d[0]) ** 2).sum()) < 0.25


@pytest.mark.parametrize(
    "bad",
    [
        lambda: deblur.gaussian_psf(0),
        lambda: deblur.gaussian_psf(9),
        lambda: deblur.motion_psf(0.5, 0),
        lambda: deblur.motion_psf(50, 0),
    ],
)
def test_psf_bounds_are_user_errors(bad):
    with pytest.raises(SdenhanceError):
        bad()


# --- estimation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.5, 2.0])
def test_gaussian_psf_is_estimated_from_the_edges(photo, sigma):
    psf = deblur.estimate_psf(blur(photo, deblur.gaussian_psf(sigma)))
    assert psf is not None and psf.kind == "gaussian"
    assert psf.sigma == pytest.approx(sigma, abs=0.35)


def test_motion_psf_is_estimated_with_length_and_angle():
    rgb = data.astronaut()
    psf = deblur.estimate_psf(blur(rgb, deblur.motion_psf(9, 150.0)))
    assert psf is not None and psf.kind == "motion"
    assert psf.length == pytest.approx(9, abs=1.5)
    assert abs((psf.angle - 150.0 + 90) % 180 - 90) <= 10


def test_sharp_photo_has_no_psf(photo):
    assert deblur.estimate_psf(photo) is None


# --- deconvolution ------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0])
def test_wiener_with_the_known_psf_gains_over_1_5_db(photo, sigma):
    k = deblur.gaussian_psf(sigma)
    blurred = blur(photo, k)
    out = deblur.deblur_array(as_float(blurred), k, balance=deblur.auto_balance(0.0))
    assert psnr(as_float(photo), out) - psnr(as_float(photo), as_float(blurred)) > 1.5


def test_wiener_with_the_estimated_psf_gains_over_1_db(photo):
    blurred = blur(photo, deblur.gaussian_psf(1.5))
    psf = deblur.estimate_psf(blurred)
    out = deblur.deblur_array(as_float(blurred), psf.kernel(), balance=deblur.auto_balance(0.0))
    assert psnr(as_float(photo), out) - psnr(as_float(photo), as_float(blurred)) > 1.0


def test_edge_taper_keeps_the_borders_as_good_as_the_middle(photo):
    k = deblur.gaussian_psf(1.5)
    blurred = blur(photo, k)
    out = deblur.deblur_array(as_float(blurred), k, balance=0.002, overshoot=10.0)
    err = np.abs(out - as_float(photo)).mean(axis=2)
    border = np.concatenate(
        [err[:8].ravel(), err[-8:].ravel(), err[:, :8].ravel(), err[:, -8:].ravel()]
    )
    assert border.mean() < 2.0 * err[16:-16, 16:-16].mean()


def test_ringing_clip_holds_pixels_in_the_local_range(photo):
    blurred = as_float(blur(photo, deblur.gaussian_psf(1.0)))
    k = deblur.gaussian_psf(3.0)  # far too large: rings hard
    out = deblur.deblur_array(blurred, k, balance=0.001, overshoot=0.0)
    r = k.shape[0] // 2
    lo = cv2.erode(
        blurred, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_REFLECT
    )
    hi = cv2.dilate(
        blurred, np.ones((2 * r + 1, 2 * r + 1), np.uint8), borderType=cv2.BORDER_REFLECT
    )
    assert (out >= lo - 1e-6).all() and (out <= hi + 1e-6).all()
    free = deblur.deblur_array(blurred, k, balance=0.001, overshoot=10.0)
    assert ((free < lo - 0.05) | (free > hi + 0.05)).mean() > 0.01  # without it, it would ring


def test_balance_rises_with_noise():
    assert deblur.auto_balance(0) < deblur.auto_balance(2) < deblur.auto_balance(5) <= 0.5


# --- the stage ----------------------------------------------------------------------------------


def test_stage_deblurs_with_given_and_estimated_psf(photo):
    blurred = Image.fromarray(blur(photo, deblur.gaussian_psf(1.5)))
    enhancer = Enhancer()
    before = psnr(as_float(photo), as_float(np.asarray(blurred)))
    given = enhancer.run("deblur", blurred, psf="gaussian", sigma=1.5)
    assert psnr(as_float(photo), as_float(np.asarray(given))) - before > 1.5
    auto = enhancer.run("deblur", blurred)
    assert psnr(as_float(photo), as_float(np.asarray(auto))) - before > 1.0
    assert enhancer.last_record["deblur"][0]["psf"] == "gaussian"
    assert enhancer.last_record["steps"][0]["options"]["psf"] == "auto"


def test_stage_leaves_a_sharp_image_alone(photo):
    out = Enhancer().run("deblur", Image.fromarray(photo))
    assert np.array_equal(np.asarray(out), photo)


@pytest.mark.parametrize(
    "options,words",
    [
        ({"psf": "gaussian", "length": 9}, "motion PSF"),
        ({"psf": "motion", "sigma": 1.0}, "Gaussian PSF"),
        ({"sigma": 20}, "`sigma`"),
        ({"psf": "box"}, "`psf`"),
    ],
)
def test_stage_options_are_checked(options, words):
    with pytest.raises(SdenhanceError, match=words):
        build_options("deblur", options)
