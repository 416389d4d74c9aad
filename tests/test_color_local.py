"""The `local` colour fix (ops.color_local): exact properties, masks, sizes, a real-photo check.

The general properties every method shares (identity, shapes, strength, masks leave the rest
unchanged and unread) are in test_color.py; here are those that only a local colour map has.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.filters import gaussian

from sdenhance.ops.color import color_transfer
from sdenhance.ops.color_local import MAX_BOUND, fit_grid
from sdenhance.ops.metrics import delta_e
from sdenhance.ops.resize import resize

LUMA = np.array([0.2125, 0.7154, 0.0721])


def local(image, reference, **kwargs) -> np.ndarray:
    return color_transfer(image, reference, "local", **kwargs).astype(np.float64)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Chelsea at half size, 148×224, squeezed into [0.2, 0.8] so drifts need no clipping."""
    return 0.2 + 0.6 * data.chelsea()[:296:2, :448:2].astype(np.float64) / 255


def shrink(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return resize(x, size, "area").astype(np.float64)


def fine(x: np.ndarray) -> np.ndarray:
    """Luminance minus its σ = 2 px Gaussian low-pass: the fine band."""
    y = x @ LUMA if x.ndim == 3 else x
    return y - gaussian(y, sigma=2)


def texture(shape: tuple[int, ...], seed: int, amplitude: float = 0.04) -> np.ndarray:
    """Grey fine texture (white noise minus its σ = 1 px blur), (H, W, 1): new detail."""
    n = np.random.default_rng(seed).standard_normal(shape[:2])
    return amplitude * (n - gaussian(n, sigma=1))[..., None]


# ----------------------------------------------------------------------------------------------
# exact properties


def test_fit_grid_sizes():
    assert fit_grid((2048, 2048), (512, 512)) == (512, 512)  # output / 4
    assert fit_grid((2048, 2048), (2048, 2048)) == (512, 512)
    assert fit_grid((100, 60), (10, 40)) == (10, 15)  # the reference when smaller, per axis
    assert fit_grid((3, 2), (3, 2)) == (1, 1)
    assert fit_grid((8192, 8192), (8192, 8192)) == (1024, 1024)  # capped at 2^20 grid pixels


def test_output_whose_block_means_are_the_reference_comes_back_unchanged(photo):
    """A reference 4× smaller that is exactly the output's 4×4 averages: nothing to correct."""
    h, w = photo.shape[:2]
    np.testing.assert_allclose(local(photo, shrink(photo, (w // 4, h // 4))), photo, atol=1e-6)
    np.testing.assert_allclose(local(photo, photo), photo, atol=1e-6)


@pytest.mark.parametrize(
    ("ref_size", "atol"),
    [
        ((224, 148), 5e-4),  # same size
        ((56, 37), 5e-4),  # 4× smaller
        ((75, 50), 5e-4),  # ~3× smaller, not a divisor
        ((448, 296), 5e-3),  # 2× larger (bicubic: its averages are not quite the photo's)
    ],
)
def test_a_global_affine_colour_drift_is_removed_exactly(photo, ref_size, atol):
    """Gains, cross-channel terms (saturation, hue rotation) and offsets are undone, against a
    reference of any size."""
    matrix = np.array([[1.10, 0.05, -0.05], [0.02, 0.90, 0.03], [-0.04, 0.06, 0.85]])
    drifted = photo @ matrix.T + np.array([0.03, -0.02, 0.05])
    assert 0 < drifted.min() and drifted.max() < 1
    if ref_size[0] > photo.shape[1]:
        reference = np.clip(resize(photo, ref_size, "bicubic"), 0, 1).astype(np.float64)
    else:
        reference = shrink(photo, ref_size)
    out = local(drifted, reference)
    assert np.abs(drifted - photo).max() > 0.05
    np.testing.assert_allclose(out, photo, atol=atol)


def test_a_grey_affine_drift_is_removed_exactly(photo):
    grey = photo @ LUMA
    np.testing.assert_allclose(local(0.8 * grey + 0.1, grey), grey, atol=1e-5)


def test_a_spatially_smooth_gain_is_removed(photo):
    h, w = photo.shape[:2]
    x = np.linspace(-1, 1, w)[None, :, None]
    y = np.linspace(-1, 1, h)[:, None, None]
    drifted = photo * (1 + 0.1 * x * np.array([1.0, 0.5, -1.0]) + 0.05 * y)
    for reference in (photo, shrink(photo, (w // 4, h // 4))):
        out = local(drifted, reference)
        assert delta_e(drifted, photo) > 3.0
        assert delta_e(out, photo) < 0.3
        assert np.abs(out - photo).max() < 0.03


@pytest.mark.parametrize("gain", [1.0, 0.85])
def test_new_detail_is_kept_and_rescaled_with_the_drift(photo, gain):
    """Detail added after a gain drift comes back divided by the gain: the map corrects the
    detail too (the wavelet fix would keep it at the drifted contrast)."""
    h, w = photo.shape[:2]
    detail = texture(photo.shape, seed=0)
    drifted = gain * photo + 0.05 + detail
    for reference in (photo, shrink(photo, (w // 4, h // 4))):
        kept = (local(drifted, reference) - photo) @ LUMA
        d = detail[..., 0]
        assert np.corrcoef(kept.ravel(), d.ravel())[0, 1] > 0.995
        assert kept.ravel() @ d.ravel() / (d.ravel() @ d.ravel()) == pytest.approx(
            1 / gain, rel=0.02
        )


def test_a_multiplicative_drift_leaves_no_mid_band_unlike_the_wavelet_fix(photo):
    """More saturation and contrast live in the middle band too: the local map removes them
    there; swapping the lowest band only (wavelet) does not."""
    y = (photo @ LUMA)[..., None]
    drifted = np.clip(y + 1.3 * (photo - y), 0, 1)
    drifted = np.clip(0.5 + 1.2 * (drifted - 0.5), 0, 1)
    err_local = delta_e(local(drifted, photo), photo, sigma=2)
    err_wavelet = delta_e(color_transfer(drifted, photo, "wavelet"), photo, sigma=2)
    assert err_local < 0.25
    assert err_local < 0.4 * err_wavelet


def test_gain_is_bounded_where_the_output_lost_the_references_contrast(photo):
    """Output almost flat (clipped) where the reference is textured: the map may amplify what
    is left of the output's own texture by no more than its bound (1 + MAX_BOUND)."""
    h, w = photo.shape[:2]
    rng = np.random.default_rng(1)
    drifted = photo.copy()
    drifted[: h // 2] = 0.97 + 0.002 * rng.standard_normal((h // 2, w, 1))
    out = local(drifted, photo)
    assert np.all(np.isfinite(out))
    top = (slice(8, h // 2 - 8), slice(8, w - 8))
    kept, own = fine(out)[top].ravel(), fine(drifted)[top].ravel()
    # the fit asks for far more (the output has no contrast left): the bound is what holds it
    assert 1.0 < kept @ own / (own @ own) <= 1 + MAX_BOUND


# ----------------------------------------------------------------------------------------------
# masks


def test_mask_fixes_its_region_only_from_its_own_pairs(photo):
    """Left half drifted one way (the region), right half another: the region is corrected,
    the rest is returned untouched and does not bias the fit."""
    h, w = photo.shape[:2]
    drifted = photo.copy()
    drifted[:, : w // 2] = photo[:, : w // 2] * np.array([0.85, 0.95, 1.1]) + 0.02
    drifted[:, w // 2 :] = photo[:, w // 2 :] * 1.2 - 0.1
    mask = np.zeros((h, w))
    mask[:, : w // 2] = 1
    out = local(drifted, photo, mask=mask)
    np.testing.assert_array_equal(out[:, w // 2 :], drifted[:, w // 2 :].astype(np.float32))
    np.testing.assert_allclose(out[:, : w // 2], photo[:, : w // 2], atol=2e-3)


def test_inpaint_style_masks_match_the_hole_to_its_surroundings(photo):
    """A repainted square with a cast, matched against a ring around it (disjoint regions: no
    pixel pairs): the cast inside is mostly removed, the ring and beyond are untouched."""
    h, w = photo.shape[:2]
    hole = np.zeros((h, w))
    hole[50:100, 80:140] = 1
    ring = np.zeros((h, w))
    ring[35:115, 65:155] = 1
    ring -= hole
    drifted = photo.copy()
    drifted[hole == 1] += np.array([0.08, 0.0, -0.06])
    out = local(drifted, photo, mask=hole, reference_mask=ring)
    inside = hole == 1
    np.testing.assert_array_equal(out[~inside], drifted[~inside].astype(np.float32))
    before = np.abs((drifted - photo)[inside].mean(axis=0)).max()
    after = np.abs((out - photo)[inside].mean(axis=0)).max()
    assert after < 0.3 * before  # the ring's colours are not exactly the hole's


# ----------------------------------------------------------------------------------------------
# a real photo, benchmark-like (bench/colorfix.py has the full set)


def sd_drift(p: np.ndarray) -> np.ndarray:
    """Darker tone curve, warm gain, more saturation, a left-right cast and a blotchy gain."""
    h, w = p.shape[:2]
    q = 0.97 * p**1.15 * np.array([1.04, 1.0, 0.93])
    y = (q @ LUMA)[..., None]
    q = y + 1.2 * (q - y)
    field = gaussian(np.random.default_rng(3).standard_normal((h, w)), sigma=0.12 * min(h, w))
    field = (field - field.mean()) / field.std()
    x = np.linspace(-1, 1, w)[None, :, None]
    return q * (1 + 0.05 * field[..., None]) + 0.03 * x * np.array([1.0, 0.0, -1.0])


@pytest.mark.parametrize("factor", [1, 4])
def test_real_photo_drift_is_removed_and_detail_kept(factor):
    truth = data.chelsea()[:300, :448].astype(np.float64) / 255
    h, w = truth.shape[:2]
    detail = texture(truth.shape, seed=4)
    output = np.clip(sd_drift(truth) + detail, 0, 1)
    reference = truth if factor == 1 else shrink(truth, (w // factor, h // factor))
    out = local(output, reference)
    wavelet = color_transfer(output, reference, "wavelet")
    err = delta_e(out, truth, sigma=2)
    assert delta_e(output, truth, sigma=2) > 3.0
    assert err < 0.45
    assert err < 0.5 * delta_e(wavelet, truth, sigma=2)
    kept, injected = fine(out - truth).ravel(), fine(detail[..., 0]).ravel()
    assert np.corrcoef(kept, injected)[0, 1] > 0.95
