"""Image quality metrics: PSNR, SSIM and colour difference (mean CIEDE2000).

PSNR and SSIM are scikit-image's, with data range 1; `delta_e` answers the question the colour
fix is about (has the colour moved?) rather than whether pixels match, so it low-passes both
images first: texture and noise would otherwise dominate a per-pixel colour difference.
Inputs are float arrays in [0, 1] of shape (H, W, 3) or (H, W).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.resize import resize


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (data range 1); inf for identical images.

    Parameters
    ----------
    a, b : ndarray of the same shape, (H, W, 3) or (H, W)
    """
    from skimage.metrics import peak_signal_noise_ratio

    x, y = _pair(a, b)
    if np.array_equal(x, y):
        return float("inf")
    return float(peak_signal_noise_ratio(x, y, data_range=1.0))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (scikit-image defaults: 7×7 uniform window, data range 1).

    Colour images are averaged over channels. Images smaller than 7 px use the largest odd
    window that fits; below 3 px SSIM is undefined.

    Parameters
    ----------
    a, b : ndarray of the same shape, (H, W, 3) or (H, W), at least 3×3
    """
    from skimage.metrics import structural_similarity

    x, y = _pair(a, b)
    side = min(x.shape[:2])
    if side < 3:
        raise SdenhanceError(
            f"SSIM needs images of at least 3×3 pixels; got {x.shape[1]}×{x.shape[0]}"
        )
    win = min(7, side if side % 2 else side - 1)
    return float(
        structural_similarity(
            x, y, data_range=1.0, channel_axis=-1 if x.ndim == 3 else None, win_size=win
        )
    )


def delta_e(a: np.ndarray, b: np.ndarray, *, sigma: float = 1.0) -> float:
    """Mean CIEDE2000 colour difference after a Gaussian low-pass of `sigma` px.

    About 1 is the smallest difference people see side by side; above 5 reads as another
    colour. `sigma` 0 compares pixel by pixel.

    Parameters
    ----------
    a, b : ndarray of the same shape, (H, W, 3) or (H, W) (grey is compared as neutral colour)
    sigma : float
        Standard deviation of the low-pass in pixels, ≥ 0.
    """
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.filters import gaussian

    if not sigma >= 0:
        raise SdenhanceError(f"`sigma` must be ≥ 0; got {sigma!r}")
    x, y = _pair(a, b)
    if x.ndim == 2:
        x, y = np.repeat(x[..., None], 3, axis=2), np.repeat(y[..., None], 3, axis=2)
    if sigma > 0:
        x = gaussian(x, sigma=sigma, channel_axis=-1, preserve_range=True)
        y = gaussian(y, sigma=sigma, channel_axis=-1, preserve_range=True)
    return float(np.mean(deltaE_ciede2000(rgb2lab(x), rgb2lab(y))))


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """PSNR, SSIM and mean dE2000 of `b` against `a`.

    `b` is resampled to `a`'s size (Lanczos, clipped) when they differ, and the result says so;
    a grey image compared with a colour one is treated as neutral colour.

    Parameters
    ----------
    a : ndarray of shape (H, W, 3) or (H, W)
    b : ndarray of shape (H2, W2, 3) or (H2, W2)

    Returns
    -------
    dict
        ``psnr`` (dB, inf when identical), ``ssim``, ``delta_e``, ``resampled`` (bool),
        ``size_a`` and ``size_b`` ((width, height) of the inputs).
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != y.ndim:
        x, y = _as_colour(x), _as_colour(y)
    size_a, size_b = (x.shape[1], x.shape[0]), (y.shape[1], y.shape[0])
    resampled = size_a != size_b
    if resampled:
        y = np.clip(resize(y, size_a, "lanczos"), 0.0, 1.0).astype(np.float64)
    return {
        "psnr": psnr(x, y),
        "ssim": ssim(x, y),
        "delta_e": delta_e(x, y),
        "resampled": resampled,
        "size_a": size_a,
        "size_b": size_b,
    }


def _as_colour(x: np.ndarray) -> np.ndarray:
    return np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = (np.asarray(v, dtype=np.float64) for v in (a, b))
    x, y = (v[..., 0] if v.ndim == 3 and v.shape[2] == 1 else v for v in (x, y))
    if x.shape != y.shape:
        raise SdenhanceError(
            f"images differ in shape: {x.shape} and {y.shape}; use `compare` to resample"
        )
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 3):
        raise SdenhanceError(f"expected (H, W, 3) or (H, W) images; got shape {x.shape}")
    return x, y
