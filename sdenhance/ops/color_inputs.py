"""Checking and shaping of the inputs of a colour transfer, and blending its result in.

Shared by the methods of `ops.color` and `ops.color_local`: images become float (H, W, C) planes
with matching channels, masks become validated weight maps (resampled where a method needs the
reference at the image's size), and a result is blended in by strength × mask and clipped.
"""

from __future__ import annotations

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.resize import resize

LUMA = np.array([0.2125, 0.7154, 0.0721])  # sRGB/Rec.709, as skimage.color.rgb2gray


def check_strength(strength: float) -> None:
    if not 0.0 <= float(strength) <= 1.0:
        raise SdenhanceError(f"`strength` must be in [0, 1]; got {strength!r}")


def as_planes(arr: np.ndarray, name: str, dtype: type = np.float64) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) -> float (H, W, C)."""
    x = np.asarray(arr, dtype=dtype)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[2] not in (1, 3) or x.shape[0] < 1 or x.shape[1] < 1:
        raise SdenhanceError(
            f"`{name}` must be an (H, W, 3) colour or (H, W) grey array; got shape {np.shape(arr)}"
        )
    return x


def as_weights(mask: np.ndarray | None, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    w = np.asarray(mask, dtype=np.float64)
    if w.ndim == 3 and w.shape[2] == 1:
        w = w[..., 0]
    if w.shape != shape:
        raise SdenhanceError(
            f"`{name}` must be {shape[1]}×{shape[0]} (W×H) like its image; "
            f"got shape {np.shape(mask)}"
        )
    if not (np.all(np.isfinite(w)) and w.min() >= 0.0 and w.max() <= 1.0):
        raise SdenhanceError(f"`{name}` values must lie in [0, 1]")
    if not w.any():
        raise SdenhanceError(f"`{name}` selects no pixels (all zero)")
    return w


def prepare(
    image: np.ndarray,
    reference: np.ndarray,
    mask: np.ndarray | None,
    reference_mask: np.ndarray | None,
    *,
    align: bool,
    dtype: type = np.float64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, tuple[int, ...]]:
    """Planes of image and reference with matching channels, and the two weight maps.

    `align`: resample the reference (and its mask) to the image size; otherwise a default
    reference mask is the image mask resampled to the reference.
    """
    shape = np.shape(image)
    img = as_planes(image, "image", dtype)
    ref = as_planes(reference, "reference", dtype)
    if img.shape[2] == 1 and ref.shape[2] == 3:
        ref = (ref @ LUMA.astype(dtype))[..., None]
    elif img.shape[2] == 3 and ref.shape[2] == 1:
        ref = np.repeat(ref, 3, axis=2)
    h, w = img.shape[:2]
    w_img = as_weights(mask, (h, w), "mask")
    w_ref = as_weights(reference_mask, ref.shape[:2], "reference_mask")
    resized = ref.shape[:2] != (h, w)
    if align and resized:
        ref = resize(ref, (w, h), "lanczos").astype(dtype, copy=False)
        if w_ref is not None:
            w_ref = as_weights(
                np.clip(resize(w_ref, (w, h), "bilinear"), 0, 1), (h, w), "reference_mask"
            )
    if w_ref is None and w_img is not None:
        if ref.shape[:2] == (h, w):
            w_ref = w_img
        else:
            rh, rw = ref.shape[:2]
            w_ref = as_weights(np.clip(resize(w_img, (rw, rh), "bilinear"), 0, 1), (rh, rw), "mask")
    return img, ref, w_img, w_ref, shape


def finish(
    img: np.ndarray,
    transferred: np.ndarray,
    weights: np.ndarray | None,
    strength: float,
    shape: tuple[int, ...],
) -> np.ndarray:
    """Blend the transfer in by strength × mask, clip to [0, 1], give back the input's shape."""
    amount = float(strength) if weights is None else float(strength) * weights[..., None]
    if weights is None and strength == 1.0:
        out = transferred
    else:
        out = img * (1.0 - amount) + transferred * amount
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False).reshape(shape)
