"""Offline deblurring: point-spread functions, their estimation, and Wiener deconvolution.

A blurred photo is the sharp one convolved with a PSF (defocus: about a Gaussian; camera shake
or a moving subject: a short line). Knowing the PSF, a Wiener filter undoes the blur where the
signal stands above the noise and leaves the rest (scikit-image's `wiener`, Laplacian
regulariser). Three things keep it from making images worse:

- the PSF is estimated from the image's own edges (`image_stats.edge_blur`): σ of a Gaussian
  from the median edge; a motion when one direction is much softer than its perpendicular,
  its direction from how the edge blur varies with direction
  (``σ²(θ) = σ0² + σm² cos²(θ − φ)``, fitted by least squares) and its length, with the
  direction refined, from the cepstrum;
- the image is padded by reflection and its padding faded to the mean before the FFT, so the
  periodic wrap of the transform meets no jump at the borders (edge tapering);
- ringing is clipped: every output pixel is held within the darkest and brightest values of
  the blurred input around it (a window as wide as the PSF), widened by `overshoot`, so halos
  beside edges, the classic deconvolution artefact, cannot exceed the edge itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops import image_stats as st

KINDS = ("gaussian", "motion")
INTRINSIC_SIGMA = 0.6  # edge σ (px) sharp photos read (lens, demosaicing, resampling)
MAX_SIGMA = 8.0
MAX_LENGTH = 41


@dataclass(frozen=True)
class Psf:
    """A blur kernel's parameters: Gaussian `sigma`, or a motion line of `length` px at `angle`
    degrees (direction of travel, counter-clockwise from +x with y pointing down the image)."""

    kind: str
    sigma: float = 0.0
    length: float = 0.0
    angle: float = 0.0

    def kernel(self) -> np.ndarray:
        if self.kind == "gaussian":
            return gaussian_psf(self.sigma)
        if self.kind == "motion":
            return motion_psf(self.length, self.angle)
        raise SdenhanceError(f"unknown PSF kind `{self.kind}`; use one of {', '.join(KINDS)}")

    @property
    def radius(self) -> int:
        return self.kernel().shape[0] // 2


def gaussian_psf(sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian of `sigma` px, 2·⌈3σ⌉+1 px wide."""
    if not 0.0 < sigma <= MAX_SIGMA:
        raise SdenhanceError(f"Gaussian PSF `sigma` must be in (0, {MAX_SIGMA}] px; got {sigma}")
    r = max(1, math.ceil(3.0 * sigma))
    g = cv2.getGaussianKernel(2 * r + 1, sigma, cv2.CV_64F)
    return g @ g.T


def motion_psf(length: float, angle: float) -> np.ndarray:
    """Normalised line of `length` px through the centre at `angle` degrees: the path of a
    point during the exposure, sampled densely and binned at 8× before area-averaging, so an
    axis-aligned whole length is an exact box and any angle or fraction is smooth."""
    if not 1.0 <= length <= MAX_LENGTH:
        raise SdenhanceError(f"motion PSF `length` must be in [1, {MAX_LENGTH}] px; got {length}")
    size = 2 * math.ceil(length / 2.0) + 1
    up, centre = 8, size // 2
    t = (np.arange(math.ceil(length * up * 4)) + 0.5) / math.ceil(length * up * 4)
    t = (t - 0.5) * length
    xs = centre + t * math.cos(math.radians(angle))
    ys = centre + t * math.sin(math.radians(angle))
    ix = np.clip(np.floor((xs + 0.5) * up).astype(int), 0, size * up - 1)
    iy = np.clip(np.floor((ys + 0.5) * up).astype(int), 0, size * up - 1)
    canvas = np.zeros((size * up, size * up))
    np.add.at(canvas, (iy, ix), 1.0)
    k = canvas.reshape(size, up, size, up).sum(axis=(1, 3))
    return k / k.sum()


def estimate_psf(rgb: np.ndarray, *, motion_ratio: float = 1.7, sharp: float = 1.0) -> Psf | None:
    """The blur of an 8-bit RGB image as a PSF, from its edges; None when it reads sharp (its
    softest edge direction below `sharp` px: sharp photos read 0.5 to 1) or shows too few edges
    to tell."""
    blur = st.edge_blur(st.detail_tiles(rgb))
    if math.isnan(blur.sigma) or blur.sigma_max < sharp:
        return None
    angles = np.radians(np.arange(st.ANGLE_BINS) * 180.0 / st.ANGLE_BINS)
    sig = np.asarray(blur.by_angle)
    ok = ~np.isnan(sig)
    if ok.sum() >= 4 and blur.sigma_max / max(blur.sigma_min, 1e-3) >= motion_ratio:
        # σ²(θ) = a + b cos 2θ + c sin 2θ: the motion adds σm² cos²(θ − φ)
        a = np.stack([np.ones(ok.sum()), np.cos(2 * angles[ok]), np.sin(2 * angles[ok])], 1)
        coef, *_ = np.linalg.lstsq(a, sig[ok] ** 2, rcond=None)
        phi = math.degrees(math.atan2(coef[2], coef[1]) / 2.0) % 180.0
        length, angle = motion_from_cepstrum(rgb, phi)
        if length >= 2.0:
            return Psf("motion", length=float(length), angle=angle)
    sigma = math.sqrt(max(blur.sigma**2 - INTRINSIC_SIGMA**2, 0.0))
    if sigma < 0.3:
        return None
    return Psf("gaussian", sigma=min(sigma, MAX_SIGMA))


def motion_from_cepstrum(
    rgb: np.ndarray, angle: float, *, spread: float = 25.0
) -> tuple[int, float]:
    """Length and angle of a motion blur from the image's cepstrum, searched within `spread`
    degrees of `angle`: a line PSF of length L puts zeros in the spectrum every 1/L along its
    direction, which the cepstrum (inverse transform of the log spectrum) shows as a deep
    minimum at distance L (Cannon, 1976). Read on a central crop of at most 512 px."""
    g = st.grey(rgb).astype(np.float64)
    h, w = g.shape
    g = g[max(0, (h - 512) // 2) :][:512, max(0, (w - 512) // 2) :][:, :512]
    h, w = g.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    spectrum = np.abs(np.fft.fft2((g - g.mean()) * window))
    cep = np.fft.fftshift(np.real(np.fft.ifft2(np.log(spectrum + 1e-3))))
    angles = np.radians(angle + np.arange(-spread, spread + 0.5, 1.0))
    dist = np.arange(3, min(MAX_LENGTH, min(h, w) // 2 - 2) + 1)
    if len(dist) == 0:
        return 0, angle
    xs = w // 2 + np.outer(np.cos(angles), dist)
    ys = h // 2 + np.outer(np.sin(angles), dist)
    values = cv2.remap(
        cep.astype(np.float32), xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR
    )
    i, j = np.unravel_index(int(np.argmin(values)), values.shape)
    return int(dist[j]), round(float(np.degrees(angles[i])) % 180.0, 1)


def deblur_array(
    rgb: np.ndarray,
    psf: np.ndarray,
    *,
    balance: float = 0.01,
    overshoot: float = 0.1,
) -> np.ndarray:
    """Wiener-deconvolve a float RGB image in [0, 1] with `psf`, ringing held in check.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), float in [0, 1]
    psf : ndarray of shape (K, K), K odd, summing to 1
    balance : float
        Wiener regularisation, > 0: larger keeps more noise out and restores less detail.
    overshoot : float
        How far past the local range of the blurred input a pixel may go, as a share of
        that range; 0 clips hard, large values turn the clipping off.

    Returns
    -------
    ndarray of shape (H, W, 3), float32 in [0, 1]
    """
    from skimage.restoration import wiener

    if not balance > 0:
        raise SdenhanceError(f"`balance` must be > 0; got {balance}")
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise SdenhanceError(f"`psf` must be a square kernel of odd size; got {psf.shape}")
    x = np.asarray(rgb, dtype=np.float64)
    r = psf.shape[0] // 2
    pad = max(16, 3 * r)
    padded = _tapered(x, pad)
    out = np.empty_like(padded)
    for c in range(3):
        out[..., c] = wiener(padded[..., c], psf, balance, clip=False)
    out = out[pad:-pad, pad:-pad]
    if overshoot < 10.0:
        out = _clip_to_neighbourhood(out, x, r, overshoot)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _tapered(x: np.ndarray, pad: int) -> np.ndarray:
    """`x` padded by reflection with the padding faded to the image mean at the outer border,
    so the FFT's periodic wrap meets no jump."""
    padded = cv2.copyMakeBorder(x, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    h, w = padded.shape[:2]

    def fade(n: int) -> np.ndarray:  # 0 at the outer border, 1 from `pad` px in (raised cosine)
        ramp = np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / pad, 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * ramp)

    window = np.outer(fade(h), fade(w))
    mean = x.reshape(-1, 3).mean(axis=0)
    return mean + (padded - mean) * window[..., None]


def _clip_to_neighbourhood(
    out: np.ndarray, blurred: np.ndarray, r: int, overshoot: float
) -> np.ndarray:
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    lo = cv2.erode(blurred, kernel, borderType=cv2.BORDER_REFLECT)
    hi = cv2.dilate(blurred, kernel, borderType=cv2.BORDER_REFLECT)
    slack = overshoot * (hi - lo)
    return np.clip(out, lo - slack, hi + slack)


def auto_balance(noise_sigma: float) -> float:
    """Wiener balance for an image with white noise of `noise_sigma` 8-bit levels: rises with
    the noise power over a floor that covers 8-bit quantisation and mild grain."""
    return float(min(0.5, 0.001 + 0.0025 * noise_sigma**2))
