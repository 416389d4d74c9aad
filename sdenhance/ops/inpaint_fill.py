"""The content a repaint starts from, under a mask: blurred surroundings, noise of the
surrounding colours, Telea's fill, or the original pixels (`FILLS`).

The model at a low strength keeps much of what it starts from, so a fill that already has the
surroundings' colours gives a repaint that blends; "original" keeps what was there.
"""

from __future__ import annotations

import cv2
import numpy as np

from sdenhance.ops.masks import grow

FILLS = ("original", "blur", "telea", "noise")


def ring_around(region: np.ndarray, width: int) -> np.ndarray:
    """Boolean ring of the unselected pixels within `width` px of `region` (1 = selected)."""
    return (grow(region, width) > 0) & (region == 0)


def blur_fill(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`region` filled with a normalised Gaussian blur of the pixels outside it.

    The blur's sigma is the region's depth (the largest distance from inside it to its edge),
    so even its centre is reached by the surroundings; it is computed at a reduced scale, since
    a blur that wide has no detail to lose. With nothing outside, the whole image is blurred.
    """
    h, w = region.shape
    inside = region > 0
    keep = (~inside).astype(np.float32)
    if keep.any():
        sigma = max(
            4.0, float(cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5).max())
        )
    else:
        keep[:] = 1.0
        sigma = max(4.0, min(h, w) / 8.0)
    factor = max(1, int(sigma // 8))
    small = (max(1, w // factor), max(1, h // factor))

    def blurred(arr: np.ndarray) -> np.ndarray:
        down = cv2.resize(arr, small, interpolation=cv2.INTER_AREA)
        down = cv2.GaussianBlur(down, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(down, (w, h), interpolation=cv2.INTER_LINEAR)

    num = blurred(rgb.astype(np.float32) * keep[..., None])
    den = blurred(keep)[..., None]
    mean = (rgb.astype(np.float64) * keep[..., None]).sum(axis=(0, 1)) / keep.sum()
    fill = np.where(den > 1e-4, num / np.maximum(den, 1e-4), mean)
    out = rgb.copy()
    out[inside] = np.clip(np.rint(fill[inside]), 0, 255).astype(np.uint8)
    return out


def noise_fill(rgb: np.ndarray, region: np.ndarray, ring: np.ndarray, seed: int) -> np.ndarray:
    """`region` filled with seeded Gaussian noise of the ring's per-channel mean and std."""
    outside = region == 0
    source = rgb[ring] if ring.any() else rgb[outside] if outside.any() else rgb.reshape(-1, 3)
    source = source.astype(np.float64)
    inside = region > 0
    values = np.random.default_rng(seed).normal(
        source.mean(axis=0), source.std(axis=0), size=(int(inside.sum()), 3)
    )
    out = rgb.copy()
    out[inside] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out


def initial_fill(
    rgb: np.ndarray, region: np.ndarray, fill: str, *, ring: np.ndarray, seed: int | None
) -> np.ndarray:
    """The image the model starts from: `rgb` with `region` given content by `fill`."""
    if fill == "original":
        return rgb
    if fill == "blur" or (fill == "telea" and not np.any(region == 0)):
        return blur_fill(rgb, region)  # Telea needs surroundings; a full mask has none
    if fill == "telea":
        from sdenhance.ops.fill import fill_region

        return fill_region(rgb, region, method="telea", radius=5)
    if seed is None:
        raise ValueError("noise fill needs a seed")
    return noise_fill(rgb, region, ring, seed)
