"""Colour transfer: give an image the colours of a reference while keeping its own detail.

Diffusion drifts colours: the tile ControlNet shifts hue, small VAE tiles grey the image, and a
repainted region rarely matches its surroundings. Each method below moves `image` towards
`reference` in a different sense; pick by the kind of shift.

Methods
-------
local (default after an upscale)
    A smooth, locally varying affine colour map (3×3 matrix and offset per pixel) fitted from
    the image's low frequencies to the reference's, applied to every pixel so it corrects the
    detail too, then the remaining low-frequency difference swapped (`ops.color_local`).
    Removes multiplicative drift (gain, saturation, contrast, tone curves) at every scale and
    keeps new detail; like `wavelet` it needs the two images aligned.
wavelet
    Low frequencies (a blur of about 13 px sigma) from the reference, everything finer from the
    image, as in StableSR's wavelet colour fix. Fixes shifts that vary across the image (per-tile
    drift, uneven casts) and keeps every new detail, but a multiplicative drift stays in the
    finer bands. Needs the two images aligned: it is meant for an output against its own
    (resampled) input.
lab
    Reinhard transfer: per-channel mean and standard deviation matched in CIE Lab. Wins for a
    global cast on images that are not aligned (another photo as reference), since Lab separates
    lightness from colour and the match looks natural.
hist
    Exact per-channel histogram (CDF) matching. Wins for strong tonal shifts (crushed blacks,
    changed contrast curves) that mean and deviation cannot describe; may posterise when the
    reference has few distinct values.
adain
    Per-channel mean and standard deviation in RGB. Fastest and simplest; good enough for mild,
    uniform casts.
none
    The image unchanged (clipped).

Images are float arrays in [0, 1] of shape (H, W, 3), or (H, W) / (H, W, 1) for grey; a colour
reference for a grey image is reduced to its luminance, a grey reference for a colour image is
used for all three channels. Outputs are float32 of the image's shape, clipped to [0, 1].

Masks (inpainting)
------------------
`mask` (H, W) in [0, 1], 1 = region, does two things: image statistics are measured only there
(weighted by it) and the correction is applied only there, in proportion to it, so pixels where
it is 0 come back unchanged. `reference_mask` says where the reference is measured; it defaults
to `mask`. An inpaint stage matching a repainted area to its unmasked surroundings passes the
repaint mask as `mask`, the original as `reference`, and a ring around the mask as
`reference_mask`.

Reference sizes
---------------
`wavelet` compares images pixel by pixel, so a reference of another size (and its mask) is
resampled to the image with Lanczos. `local` fits its map on a grid of the reference's size (at
most a quarter of the image's), so it never enlarges the reference. The statistical methods
(`lab`, `hist`, `adain`) measure the reference at its own size, since resampling would only blur
its statistics; a `mask` used as the reference's region is then resampled to the reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.color_inputs import check_strength, finish, prepare
from sdenhance.ops.color_local import local_color_map

METHODS = ("local", "wavelet", "lab", "hist", "adain", "none")
DEFAULT_METHOD = "local"  # after an upscale, and of the colorfix stage

# A channel flatter than this (a quarter of an 8-bit level) has no spread to rescale: only shift.
_FLAT_STD = 1e-3 / 255.0
WAVELET_LEVELS = 5  # à-trous levels of the wavelet method: structures above ~32 px are colour
Weights = np.ndarray | None
# Pull of the region's mean in masked low-pass filtering: decides only where the region is out of
# the filter's reach (its weight there is 0 or a kernel tail below ~1e-6).
_FILL_WEIGHT = 1e-6


# ----------------------------------------------------------------------------------------------
# public API


def color_transfer(
    image: np.ndarray,
    reference: np.ndarray,
    method: str = DEFAULT_METHOD,
    *,
    mask: np.ndarray | None = None,
    reference_mask: np.ndarray | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """Transfer the colours of `reference` onto `image` with `method`.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), (H, W) or (H, W, 1)
        Float image in [0, 1] whose colours are corrected.
    reference : ndarray of shape (H2, W2, 3), (H2, W2) or (H2, W2, 1)
        Float image in [0, 1] with the wanted colours; any size.
    method : str
        One of `METHODS`; see the module docstring for which wins when.
    mask : ndarray of shape (H, W), optional
        Weights in [0, 1]: where the image is measured and corrected. None: everywhere.
    reference_mask : ndarray of shape (H2, W2), optional
        Weights in [0, 1]: where the reference is measured. None: `mask`.
    strength : float
        0 keeps the image, 1 applies the full correction; linear in between.

    Returns
    -------
    ndarray of the image's shape, float32 in [0, 1]
    """
    if method not in METHODS:
        raise SdenhanceError(f"`method` must be one of {', '.join(METHODS)}; got {method!r}")
    check_strength(strength)
    if method == "none":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    core, align, dtype = _CORES[method]
    img, ref, w_img, w_ref, shape = prepare(
        image, reference, mask, reference_mask, align=align, dtype=dtype
    )
    return finish(img, core(img, ref, w_img, w_ref), w_img, strength, shape)


# ----------------------------------------------------------------------------------------------
# the methods: (image, reference, image weights, reference weights) -> corrected image, on the
# float HWC arrays `color_inputs.prepare` makes; `color_transfer` checks, prepares and blends


def _local(img: np.ndarray, ref: np.ndarray, w_img: Weights, w_ref: Weights) -> np.ndarray:
    """A locally varying colour map from the image to `reference`, applied to every pixel, then
    the remaining low-frequency difference swapped (`ops.color_local.local_color_map`); the
    reference is used at its own size."""
    return local_color_map(img, ref, w_img, w_ref)


def _wavelet(img: np.ndarray, ref: np.ndarray, w_img: Weights, w_ref: Weights) -> np.ndarray:
    """Low frequencies from the reference, detail from the image: ``img - low(img) + low(ref)``.

    `low` is `wavelet_lowpass`; with masks it is measured inside each image's region only. The
    reference is resampled to the image (Lanczos) when sizes differ."""
    low_img = wavelet_lowpass(img, levels=WAVELET_LEVELS, weights=w_img)
    low_ref = wavelet_lowpass(ref, levels=WAVELET_LEVELS, weights=w_ref)
    return img + (low_ref - low_img)


def _adain(img: np.ndarray, ref: np.ndarray, w_img: Weights, w_ref: Weights) -> np.ndarray:
    """Per-channel mean and standard deviation of the reference, in RGB (AdaIN without a
    network). A flat image channel (no spread) is only shifted."""
    return match_moments(img, ref, w_img, w_ref)


def _lab(img: np.ndarray, ref: np.ndarray, w_img: Weights, w_ref: Weights) -> np.ndarray:
    """Reinhard transfer: per-channel mean and standard deviation of the reference in CIE Lab.

    Grey images match lightness only. Colours pushed outside the sRGB gamut are clipped."""
    from skimage.color import lab2rgb, rgb2lab

    grey = img.shape[2] == 1
    lab_img = rgb2lab(np.repeat(img, 3, axis=2) if grey else img)
    lab_ref = rgb2lab(np.repeat(ref, 3, axis=2) if grey else ref)
    channels = slice(0, 1) if grey else slice(0, 3)
    matched = lab_img.copy()
    matched[..., channels] = match_moments(
        lab_img[..., channels], lab_ref[..., channels], w_img, w_ref, flat_std=100 * _FLAT_STD
    )
    with warnings.catch_warnings():  # out-of-gamut colours are clipped by `finish`, as documented
        warnings.simplefilter("ignore")
        rgb = lab2rgb(matched)
    return rgb.mean(axis=2, keepdims=True) if grey else rgb


def _hist(img: np.ndarray, ref: np.ndarray, w_img: Weights, w_ref: Weights) -> np.ndarray:
    """Exact per-channel histogram matching: each value goes to the reference's value at the
    same cumulative (mask-weighted) frequency. Without masks this is
    `skimage.exposure.match_histograms` per channel."""
    out = np.empty_like(img)
    for c in range(img.shape[2]):
        out[..., c] = _match_cdf(img[..., c], ref[..., c], w_img, w_ref)
    return out


# method -> (core, reference resampled to the image's size, working dtype)
_CORES: dict[str, tuple[Callable[..., np.ndarray], bool, type]] = {
    "local": (_local, False, np.float32),
    # float32: half the memory and time on big images, ample for 8- or 16-bit colours
    "wavelet": (_wavelet, True, np.float32),
    "lab": (_lab, False, np.float64),
    "hist": (_hist, False, np.float64),
    "adain": (_adain, False, np.float64),
}


def wavelet_transfer(image: np.ndarray, reference: np.ndarray, **kwargs) -> np.ndarray:
    """`color_transfer(image, reference, "wavelet", ...)`."""
    return color_transfer(image, reference, "wavelet", **kwargs)


def hist_transfer(image: np.ndarray, reference: np.ndarray, **kwargs) -> np.ndarray:
    """`color_transfer(image, reference, "hist", ...)`."""
    return color_transfer(image, reference, "hist", **kwargs)


def wavelet_lowpass(
    arr: np.ndarray, *, levels: int = 5, weights: np.ndarray | None = None
) -> np.ndarray:
    """Low-frequency residual of an à-trous wavelet decomposition.

    `levels` passes of a 3×3 binomial blur with dilation 1, 2, 4, ... and edge padding; 5 levels
    reach 31 px and act like a Gaussian of sigma ≈ 13 px. ``arr - wavelet_lowpass(arr)`` is the
    sum of all detail bands.

    With `weights`, the blur is a normalised convolution (blur(arr·w) / blur(w)), so pixels of
    weight 0 do not leak in; where no weighted pixel is within reach the result tends to the
    weighted mean of the whole region.

    Parameters
    ----------
    arr : ndarray of shape (H, W) or (H, W, C)
    levels : int
        Number of detail bands removed, ≥ 1.
    weights : ndarray of shape (H, W), optional
        Non-negative, not all zero.

    Returns
    -------
    ndarray of arr's shape, float32 (float64 input stays float64)
    """
    if levels < 1:
        raise SdenhanceError(f"`levels` must be ≥ 1; got {levels}")
    x = np.asarray(arr)
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)
    planes = x[..., None] if x.ndim == 2 else x
    if weights is None:
        low = planes
        for level in range(levels):
            low = _binomial_blur(low, 2**level)
    else:
        w = np.asarray(weights, dtype=planes.dtype)[..., None]
        num, den = planes * w, w
        for level in range(levels):
            num, den = _binomial_blur(num, 2**level), _binomial_blur(den, 2**level)
        region_mean = (planes * w).sum(axis=(0, 1)) / w.sum()
        low = (num + _FILL_WEIGHT * region_mean) / (den + _FILL_WEIGHT)
    return low[..., 0] if x.ndim == 2 else low


def match_moments(
    values: np.ndarray,
    reference: np.ndarray,
    weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
    *,
    flat_std: float = _FLAT_STD,
) -> np.ndarray:
    """Shift and scale each channel of `values` to the (weighted) mean and std of `reference`.

    Parameters
    ----------
    values : ndarray of shape (H, W, C)
    reference : ndarray of shape (H2, W2, C)
    weights, reference_weights : ndarray of shape (H, W) / (H2, W2), optional
    flat_std : float
        A channel of `values` with a std at or below this has no spread to rescale and is only
        shifted (default: a quarter of an 8-bit level on a [0, 1] scale).

    Returns
    -------
    ndarray of shape (H, W, C), float64, unclipped
    """
    mu_v, sd_v = _moments(values, weights)
    mu_r, sd_r = _moments(reference, reference_weights)
    scale = np.where(sd_v > flat_std, sd_r / np.maximum(sd_v, flat_std), 1.0)
    return (np.asarray(values, dtype=np.float64) - mu_v) * scale + mu_r


# ----------------------------------------------------------------------------------------------
# helpers


def _binomial_blur(x: np.ndarray, r: int) -> np.ndarray:
    """Separable [1, 2, 1]/4 blur with dilation `r` and edge padding, over axes 0 and 1."""
    import cv2

    kernel = np.zeros(2 * r + 1, dtype=x.dtype)
    kernel[[0, r, 2 * r]] = (0.25, 0.5, 0.25)
    out = cv2.sepFilter2D(x, -1, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
    return out.reshape(x.shape)


def _moments(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (weighted) mean and population std of an (H, W, C) array, in float64."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    if w is None:
        return flat.mean(axis=0), flat.std(axis=0)
    wf = np.asarray(w, dtype=np.float64).reshape(-1)
    total = wf.sum()
    mean = wf @ flat / total
    var = wf @ (flat - mean) ** 2 / total
    return mean, np.sqrt(np.maximum(var, 0.0))


def _match_cdf(
    src: np.ndarray, ref: np.ndarray, w_src: np.ndarray | None, w_ref: np.ndarray | None
) -> np.ndarray:
    """Map each value of `src` to the `ref` value at the same (weighted) cumulative frequency."""
    values, inverse = np.unique(src.reshape(-1), return_inverse=True)
    counts = np.bincount(
        inverse.reshape(-1), weights=None if w_src is None else w_src.reshape(-1)
    ).astype(np.float64)
    src_q = np.cumsum(counts) / counts.sum()
    ref_values, ref_inverse = np.unique(ref.reshape(-1), return_inverse=True)
    ref_counts = np.bincount(
        ref_inverse.reshape(-1), weights=None if w_ref is None else w_ref.reshape(-1)
    ).astype(np.float64)
    keep = ref_counts > 0  # values outside the reference region are not part of its histogram
    ref_q = np.cumsum(ref_counts[keep]) / ref_counts.sum()
    mapped = np.interp(src_q, ref_q, ref_values[keep])
    return mapped[inverse].reshape(src.shape)
