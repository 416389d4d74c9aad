"""Colour transfer (ops.color), float resampling (ops.resize) and the colorfix/blend/denoise stages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from skimage import data
from skimage.color import rgb2lab
from skimage.exposure import match_histograms
from skimage.filters import gaussian

from sdenhance.api import apply_stage, build_options
from sdenhance.errors import SdenhanceError
from sdenhance.io.convert import from_array, to_array
from sdenhance.ops.color import (
    DEFAULT_METHOD,
    METHODS,
    color_transfer,
    hist_transfer,
    match_moments,
    wavelet_lowpass,
    wavelet_transfer,
)
from sdenhance.ops.metrics import delta_e
from sdenhance.ops.resize import RESIZE_METHODS, resize
from sdenhance.stages import Context

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRANSFERS = [m for m in METHODS if m != "none"]


def images(min_side: int = 1, max_side: int = 10, lo: float = 0.0, hi: float = 1.0, colour=None):
    """Float64 images of shape (H, W, 3) or (H, W), values in [lo, hi]."""
    channels = (
        st.just(3) if colour is True else st.just(0) if colour is False else st.sampled_from([0, 3])
    )

    @st.composite
    def build(draw):
        h = draw(st.integers(min_side, max_side))
        w = draw(st.integers(min_side, max_side))
        c = draw(channels)
        shape = (h, w, c) if c else (h, w)
        return draw(arrays(np.float64, shape, elements=st.floats(lo, hi)))

    return build()


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    return flat.mean(axis=0), flat.std(axis=0)


# ----------------------------------------------------------------------------------------------
# exact small cases


@pytest.mark.parametrize(
    ("method", "image", "reference", "expected"),
    [
        # mean 0.3, std 0.1 -> mean 0.7, std 0.2
        ("adain", [[0.2, 0.4]], [[0.5, 0.9]], [[0.5, 0.9]]),
        # a flat image has no spread to rescale: only shifted to the reference mean
        ("adain", [[0.5, 0.5]], [[0.1, 0.3]], [[0.2, 0.2]]),
        # each value takes the reference value of the same rank
        ("hist", [[0.1, 0.3, 0.2]], [[0.9, 0.5, 0.7]], [[0.5, 0.9, 0.7]]),
        ("hist", [[0.4, 0.4], [0.6, 0.6]], [[0.0, 1.0], [0.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]]),
        # constants: the low frequencies (the whole image) come from the reference
        ("wavelet", [[0.2, 0.2, 0.2]], [[0.6]], [[0.6, 0.6, 0.6]]),
        ("none", [[0.2, 1.5]], [[0.9]], [[0.2, 1.0]]),
    ],
)
def test_exact_small_cases(method, image, reference, expected):
    out = color_transfer(np.array(image), np.array(reference), method)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.dtype == np.float32


def test_wavelet_adds_the_low_frequency_difference():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.3, 0.7, (20, 24, 3))
    reference = rng.uniform(0.3, 0.7, (20, 24, 3))
    expected = image - wavelet_lowpass(image) + wavelet_lowpass(reference)
    np.testing.assert_allclose(wavelet_transfer(image, reference), expected, atol=1e-6)


def test_wavelet_levels_set_the_reach():
    # one bright pixel spreads 2^levels - 1 pixels: 1 + 2 + 4 = 7 for three levels
    impulse = np.zeros((1, 21))
    impulse[0, 10] = 1.0
    low = wavelet_lowpass(impulse, levels=3)
    assert np.count_nonzero(low > 0) == 15
    assert low.sum() == pytest.approx(1.0)


def test_lab_shifts_lightness_of_grey_images():
    image = np.full((4, 4), 0.3)
    reference = np.full((3, 5), 0.6)
    np.testing.assert_allclose(color_transfer(image, reference, "lab"), 0.6, atol=1e-5)


def test_hist_equals_skimage_match_histograms():
    rng = np.random.default_rng(1)
    image = rng.random((17, 13, 3))
    reference = rng.random((9, 21, 3)) ** 2
    expected = match_histograms(image, reference, channel_axis=-1)
    np.testing.assert_allclose(hist_transfer(image, reference), expected, atol=1e-6)


@pytest.mark.parametrize("method", TRANSFERS)
def test_strength_blends_linearly(method):
    rng = np.random.default_rng(2)
    image = rng.uniform(0.2, 0.6, (12, 12, 3))
    # a recoloured, slightly changed copy: no method's full correction leaves [0, 1] (clipping
    # happens after the blend, so only unclipped results blend exactly linearly)
    reference = 0.25 + 0.9 * image + rng.uniform(-0.05, 0.05, (12, 12, 3))
    full = color_transfer(image, reference, method)
    assert 0.0 < full.min() and full.max() < 1.0
    half = color_transfer(image, reference, method, strength=0.5)
    np.testing.assert_allclose(half, 0.5 * image + 0.5 * full, atol=1e-6)
    np.testing.assert_allclose(
        color_transfer(image, reference, method, strength=0.0), image, atol=1e-7
    )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (
            {"method": "reinhard"},
            ["`method`", "'reinhard'", "local, wavelet, lab, hist, adain, none"],
        ),
        ({"strength": 1.5}, ["`strength`", "1.5", "[0, 1]"]),
        ({"mask": np.ones((3, 3))}, ["`mask`", "4×5"]),
        ({"mask": np.zeros((5, 4))}, ["`mask`", "no pixels"]),
        ({"mask": np.full((5, 4), 2.0)}, ["`mask`", "[0, 1]"]),
        ({"reference_mask": np.ones((5, 4))}, ["`reference_mask`", "6×7"]),
    ],
)
def test_errors_name_option_value_and_allowed(kwargs, words):
    image = np.full((5, 4, 3), 0.5)
    reference = np.full((7, 6, 3), 0.5)
    with pytest.raises(SdenhanceError) as info:
        color_transfer(image, reference, **{"method": "adain", **kwargs})
    for word in words:
        assert word in str(info.value)


def test_bad_image_shape_is_a_user_error():
    with pytest.raises(SdenhanceError, match="`image`"):
        color_transfer(np.zeros((4, 4, 4)), np.zeros((4, 4, 3)), "adain")


# ----------------------------------------------------------------------------------------------
# properties


@FAST
@given(image=images(), method=st.sampled_from(METHODS))
def test_identity_when_image_is_reference(image, method):
    np.testing.assert_allclose(color_transfer(image, image, method), image, atol=1e-6)


@FAST
@given(
    image=images(lo=0.0, hi=1.0, colour=None),
    reference=images(colour=None),
    method=st.sampled_from(METHODS),
)
def test_any_sizes_and_channels(image, reference, method):
    out = color_transfer(image, reference, method)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0


@FAST
@given(
    image=images(min_side=2, colour=True),
    mu=st.floats(0.2, 0.8),
    spread=st.floats(0.05, 1.0),
    ref_w=st.integers(1, 9),
)
def test_adain_matches_channel_means_and_stds(image, mu, spread, ref_w):
    mu_i, sd_i = moments(image)
    z = (image - mu_i) / np.where(sd_i > 0, sd_i, 1.0)
    # the largest std that keeps mu + z * std inside [0, 1], so nothing is clipped
    room = min(mu / max(-z.min(), 1e-9), (1 - mu) / max(z.max(), 1e-9), min(mu, 1 - mu))
    sd_r = spread * room
    sign = np.concatenate([np.ones((1, ref_w, 3)), -np.ones((1, ref_w, 3))])  # mean 0, std 1
    reference = mu + sd_r * sign
    out = color_transfer(image, reference, "adain")
    mu_o, sd_o = moments(out)
    flat = sd_i <= 1e-3 / 255
    np.testing.assert_allclose(mu_o, mu, atol=1e-5)
    np.testing.assert_allclose(sd_o, np.where(flat, sd_i, sd_r), atol=1e-5)


@FAST
@given(
    image=images(min_side=2, lo=0.25, hi=0.75, colour=True),
    gain=arrays(np.float64, 3, elements=st.floats(0.9, 1.1)),
    offset=arrays(np.float64, 3, elements=st.floats(-0.05, 0.05)),
    seed=st.integers(0, 2**16),
)
def test_lab_matches_lab_means_and_stds(image, gain, offset, seed):
    # reference: the image's pixels shuffled and recoloured, so its Lab statistics differ
    flat = image.reshape(-1, 3)[
        np.random.default_rng(seed).permutation(image.shape[0] * image.shape[1])
    ]
    reference = (flat * gain + offset).reshape(image.shape[1], image.shape[0], 3)
    out = color_transfer(image, reference, "lab").astype(np.float64)
    assume(0.0 < out.min() and out.max() < 1.0)  # out-of-gamut colours are clipped
    mu_i, sd_i = moments(rgb2lab(image))
    mu_r, sd_r = moments(rgb2lab(reference))
    mu_o, sd_o = moments(rgb2lab(out))
    np.testing.assert_allclose(mu_o, mu_r, atol=2e-3)
    np.testing.assert_allclose(sd_o, np.where(sd_i <= 1e-1 / 255, sd_i, sd_r), atol=2e-3)


@FAST
@given(
    values=st.lists(st.floats(0.0, 1.0, width=32), min_size=2, max_size=60, unique=True),
    ref_values=st.data(),
    rows=st.integers(1, 3),
)
def test_hist_makes_cdfs_match(values, ref_values, rows):
    """Same pixel count, distinct values: the sorted output *is* the sorted reference."""
    n = len(values) - len(values) % rows
    assume(n >= 2)
    ref = ref_values.draw(
        st.lists(st.floats(0.0, 1.0, width=32), min_size=n, max_size=n, unique=True)
    )
    image = np.array(values[:n]).reshape(rows, -1)
    reference = np.array(ref).reshape(-1, 1)  # another shape, same count
    out = color_transfer(image, reference, "hist")
    np.testing.assert_allclose(np.sort(out.ravel()), np.sort(reference.ravel()), atol=1e-7)
    # and the order of the pixels is kept
    assert np.array_equal(
        np.argsort(out.ravel(), kind="stable"), np.argsort(image.ravel(), kind="stable")
    )


@FAST
@given(image=images(colour=True), reference=images(colour=True))
def test_hist_agrees_with_skimage_at_any_sizes(image, reference):
    expected = np.clip(match_histograms(image, reference, channel_axis=-1), 0, 1)
    np.testing.assert_allclose(color_transfer(image, reference, "hist"), expected, atol=1e-6)


@FAST
@given(
    image=images(lo=0.3, hi=0.7),
    offset=st.floats(-0.25, 0.25),
    ref_h=st.integers(1, 12),
    ref_w=st.integers(1, 12),
)
def test_wavelet_takes_the_references_low_frequencies(image, offset, ref_h, ref_w):
    """A reference that is the image's mean plus an offset (any size): the output is the image
    with the offset added, every detail kept."""
    grey = image.ndim == 2
    ref_shape = (ref_h, ref_w) if grey else (ref_h, ref_w, 3)
    mean = image.mean(axis=(0, 1))
    reference = np.broadcast_to(mean + offset, ref_shape)
    out = color_transfer(image, reference, "wavelet")
    expected = np.clip(image - wavelet_lowpass(image) + mean + offset, 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@FAST
@given(
    h=st.integers(66, 80),
    w=st.integers(66, 80),
    amplitude=st.floats(0.0, 0.2),
    base_image=st.floats(0.25, 0.75),
    base_reference=st.floats(0.25, 0.75),
    ref_amplitude=st.floats(0.0, 0.2),
)
def test_wavelet_keeps_image_detail_and_drops_reference_detail(
    h, w, amplitude, base_image, base_reference, ref_amplitude
):
    """Finest detail (a pixel checkerboard) of the image survives exactly; the reference's
    does not get in. Exact away from the borders (31 px reach of five levels)."""
    checker = np.where(np.add.outer(np.arange(h), np.arange(w)) % 2 == 0, 1.0, -1.0)
    image = base_image + amplitude * checker
    reference = base_reference - ref_amplitude * checker
    out = color_transfer(image, reference, "wavelet")
    inner = (slice(32, -32), slice(32, -32))
    np.testing.assert_allclose(out[inner], (base_reference + amplitude * checker)[inner], atol=1e-5)


@FAST
@given(
    image=images(min_side=2, colour=None),
    reference=images(min_side=2, colour=None),
    seed=st.integers(0, 2**16),
    method=st.sampled_from(TRANSFERS),
)
def test_mask_restricts_statistics(image, reference, seed, method):
    rng = np.random.default_rng(seed)
    mask = (rng.random(image.shape[:2]) < 0.5).astype(float)
    ref_mask = (rng.random(reference.shape[:2]) < 0.5).astype(float)
    mask.flat[0] = ref_mask.flat[0] = 1.0
    if method == "wavelet":  # compares pixels: the reference is resampled, so give it the size
        reference = resize(reference, image.shape[1::-1], "nearest").astype(np.float64)
        ref_mask = np.ones(image.shape[:2])
    out = color_transfer(image, reference, method, mask=mask, reference_mask=ref_mask)

    # pixels outside the mask come back as they were
    outside = mask == 0
    np.testing.assert_array_equal(out[outside], image[outside].astype(np.float32))
    # whatever lies outside the two regions has no say in the result inside
    other_image = np.where(
        np.expand_dims(outside, -1) if image.ndim == 3 else outside, rng.random(image.shape), image
    )
    ref_out = ref_mask == 0
    other_reference = np.where(
        np.expand_dims(ref_out, -1) if reference.ndim == 3 else ref_out,
        rng.random(reference.shape),
        reference,
    )
    again = color_transfer(other_image, other_reference, method, mask=mask, reference_mask=ref_mask)
    np.testing.assert_allclose(again[~outside], out[~outside], atol=1e-6)


@FAST
@given(
    image=images(min_side=2, colour=True),
    reference=images(colour=True),
    method=st.sampled_from(TRANSFERS),
)
def test_all_ones_mask_is_no_mask(image, reference, method):
    ones = np.ones(image.shape[:2])
    np.testing.assert_allclose(
        color_transfer(image, reference, method, mask=ones),
        color_transfer(image, reference, method),
        atol=1e-5,
    )


def test_masked_adain_matches_region_statistics():
    rng = np.random.default_rng(3)
    image = rng.uniform(0.3, 0.5, (16, 16, 3))
    reference = rng.uniform(0.4, 0.6, (16, 16, 3))
    mask = np.zeros((16, 16))
    mask[4:12, 4:12] = 1
    ring = 1.0 - mask  # the unmasked surroundings
    out = color_transfer(image, reference, "adain", mask=mask, reference_mask=ring)
    inside, around = out[mask == 1].astype(np.float64), reference[ring == 1]
    np.testing.assert_allclose(inside.mean(0), around.mean(0), atol=1e-6)
    np.testing.assert_allclose(inside.std(0), around.std(0), atol=1e-6)


def test_masked_wavelet_fills_far_from_the_reference_region():
    """Inside a big hole the local colour comes from the region's mean, never from the hole."""
    image = np.full((80, 80, 3), 0.2)
    reference = np.full((80, 80, 3), 0.9)
    reference[:, :10] = 0.5  # only this strip is measured
    region = np.zeros((80, 80))
    region[:, :10] = 1
    out = color_transfer(image, reference, "wavelet", reference_mask=region)
    np.testing.assert_allclose(out, 0.5, atol=1e-5)


def test_match_moments_is_exact_without_clipping():
    rng = np.random.default_rng(4)
    values = rng.normal(50, 20, (9, 7, 3))
    reference = rng.normal(10, 3, (5, 11, 3))
    mu, sd = moments(match_moments(values, reference))
    mu_r, sd_r = moments(reference)
    np.testing.assert_allclose(mu, mu_r, atol=1e-9)
    np.testing.assert_allclose(sd, sd_r, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# real photos: a "diffused" output = the photo + a colour cast + new fine detail


PHOTOS = ("astronaut", "chelsea", "coffee")


def luminance(x: np.ndarray) -> np.ndarray:
    return x @ np.array([0.2125, 0.7154, 0.0721])


def highpass(x: np.ndarray) -> np.ndarray:
    return x - gaussian(x, sigma=2)


def diffuse(photo: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Warm, uneven colour cast (channel gain/offset, a left-right drift) plus a seeded
    high-frequency texture: what a diffusion pass does to colour and detail."""
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    cast = photo * np.array([1.06, 0.97, 0.84]) + np.array([0.04, 0.01, -0.02])
    cast[..., 0] += 0.06 * np.linspace(-1, 1, w)[None, :]
    noise = rng.standard_normal((h, w))
    detail = 0.05 * (noise - gaussian(noise, sigma=1.0))
    return np.clip(cast + detail[..., None], 0, 1), detail


def detail_kept(out: np.ndarray, photo: np.ndarray, detail: np.ndarray) -> float:
    """Correlation of the output's new high frequencies with the detail that was added."""
    new = highpass(luminance(out) - luminance(photo)).ravel()
    return float(np.corrcoef(new, highpass(detail).ravel())[0, 1])


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: getattr(data, name)()[::2, ::2].astype(np.float64) / 255 for name in PHOTOS}


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("method", TRANSFERS)
def test_colorfix_undoes_a_cast_on_real_photos(photos, name, method):
    photo = photos[name]
    diffused, detail = diffuse(photo)
    before = delta_e(diffused, photo)
    out = color_transfer(diffused, photo, method)
    after = delta_e(out, photo)
    assert before > 3.0
    assert after < 0.8 * before
    assert detail_kept(out, photo, detail) > 0.9
    if method == "wavelet":  # the uneven cast too, and all the new detail
        assert after < 0.3 * before
        assert detail_kept(out, photo, detail) > 0.95


@pytest.mark.parametrize("name", PHOTOS)
def test_wavelet_against_a_smaller_original(photos, name):
    """After a 2× upscale the reference is the half-size input: it is resampled to fit."""
    photo = photos[name]
    small = resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), "area")
    upscaled = np.clip(resize(small, photo.shape[1::-1], "lanczos"), 0, 1).astype(np.float64)
    diffused, detail = diffuse(upscaled, seed=1)
    out = color_transfer(diffused, small, "wavelet")
    assert delta_e(out, upscaled) < 0.35 * delta_e(diffused, upscaled)
    assert detail_kept(out, upscaled, detail) > 0.95


# ----------------------------------------------------------------------------------------------
# resize


@pytest.mark.parametrize("method", RESIZE_METHODS)
@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 3), (9, 7, 1)])
def test_resize_keeps_float_precision_and_shape(method, shape):
    value = 0.123456789
    out = resize(np.full(shape, value), (4, 13), method)
    assert out.shape == (13, 4, *shape[2:])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, value, rtol=1e-6)


def test_resize_area_averages_blocks():
    arr = np.arange(16, dtype=np.float32).reshape(4, 4) / 100
    np.testing.assert_allclose(
        resize(arr, (2, 2), "area"), [[0.025, 0.045], [0.105, 0.125]], atol=1e-7
    )


def test_resize_rejects_unknown_method():
    with pytest.raises(SdenhanceError, match="`method` must be one of lanczos"):
        resize(np.zeros((2, 2)), (3, 3), "cubic")


# ----------------------------------------------------------------------------------------------
# stages


def _photo(name: str = "chelsea", step: int = 4) -> Image.Image:
    return Image.fromarray(getattr(data, name)()[::step, ::step])


def test_colorfix_stage_matches_the_reference_and_falls_back_to_the_original():
    original = _photo()
    diffused = from_array(diffuse(to_array(original).astype(np.float64))[0])
    opts = build_options("colorfix", {"method": "wavelet"})

    with_reference = apply_stage(
        "colorfix", diffused, opts, Context(images={"reference": original})
    )
    with_original = apply_stage("colorfix", diffused, opts, Context(images={"original": original}))
    assert with_reference.mode == "RGB" and with_reference.size == diffused.size
    assert np.array_equal(np.asarray(with_reference), np.asarray(with_original))
    assert delta_e(to_array(with_reference), to_array(original)) < 0.5 * delta_e(
        to_array(diffused), to_array(original)
    )
    # in a one-step run the original is the input itself: nothing to fix
    same = apply_stage("colorfix", diffused, opts, Context())
    assert np.array_equal(np.asarray(same), np.asarray(diffused))


def test_colorfix_stage_keeps_alpha_and_checks_options():
    from sdenhance.stages import colorfix

    assert colorfix.METHODS == METHODS
    assert colorfix.Options().method == DEFAULT_METHOD == "local"
    rgba = _photo().convert("RGBA")
    rgba.putalpha(128)
    opts = build_options("colorfix", {"method": "lab", "strength": 0.5})
    out = apply_stage("colorfix", rgba, opts, Context(images={"reference": _photo("coffee")}))
    assert out.mode == "RGBA" and np.all(np.asarray(out)[..., 3] == 128)
    with pytest.raises(
        SdenhanceError,
        match="`method` must be one of local, wavelet, lab, hist, adain, none; got 'rgb'",
    ):
        build_options("colorfix", {"method": "rgb"})
    with pytest.raises(SdenhanceError, match="`strength`"):
        build_options("colorfix", {"strength": 2})


def test_blend_stage_mixes_at_opacity_with_the_resampled_original():
    rng = np.random.default_rng(5)
    enhanced = from_array(rng.random((12, 16, 3)))
    original_small = from_array(rng.random((6, 8, 3)))
    opts = build_options("blend", {"opacity": 0.25})
    out = apply_stage("blend", enhanced, opts, Context(images={"original": original_small}))
    base = np.clip(resize(to_array(original_small), (16, 12), "lanczos"), 0, 1)
    expected = 0.25 * to_array(enhanced) + 0.75 * base
    assert out.size == (16, 12)
    assert np.abs(to_array(out) - expected).max() <= 0.5 / 255 + 1e-6
    full = apply_stage(
        "blend",
        enhanced,
        build_options("blend", {"opacity": 1}),
        Context(images={"original": original_small}),
    )
    assert np.array_equal(np.asarray(full), np.asarray(enhanced))
    with pytest.raises(SdenhanceError, match="`opacity` must be ≥ 0.0 and ≤ 1.0; got -0.1"):
        build_options("blend", {"opacity": -0.1})


@pytest.mark.parametrize("method", ["nlmeans", "bilateral"])
def test_denoise_stage_removes_noise_from_a_photo(method):
    from sdenhance.ops.metrics import psnr

    clean = to_array(_photo("astronaut", 2)).astype(np.float64)
    noisy = from_array(np.clip(clean + np.random.default_rng(6).normal(0, 0.06, clean.shape), 0, 1))
    out = apply_stage(
        "denoise", noisy, build_options("denoise", {"strength": 0.4, "method": method}), Context()
    )
    assert psnr(clean, to_array(out)) > psnr(clean, to_array(noisy)) + 2.0
    off = apply_stage("denoise", noisy, build_options("denoise", {"strength": 0}), Context())
    assert np.array_equal(np.asarray(off), np.asarray(noisy))
    with pytest.raises(SdenhanceError, match="`method` must be one of nlmeans, bilateral"):
        build_options("denoise", {"method": "median"})


def test_colour_stages_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; import sdenhance.stages.colorfix, sdenhance.stages.blend, sdenhance.stages.denoise, "
        "sdenhance.ops.color, sdenhance.ops.metrics; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_enhancer_api_runs_the_colour_stages_offline():
    from sdenhance import Enhancer

    photo = _photo()
    diffused = from_array(diffuse(to_array(photo).astype(np.float64))[0])
    enhancer = Enhancer()
    fixed = enhancer.colorfix(diffused, photo, method="adain")
    assert delta_e(to_array(fixed), to_array(photo)) < 0.5 * delta_e(
        to_array(diffused), to_array(photo)
    )
    assert enhancer.blend(diffused, photo.resize((40, 30)), opacity=0.5).size == diffused.size
    assert enhancer.denoise(diffused, strength=0.1).size == diffused.size
    step = enhancer.last_record["steps"][-1]
    assert (step["stage"], step["options"]) == ("denoise", {"strength": 0.1, "method": "nlmeans"})
