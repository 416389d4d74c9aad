"""Resampling of float images without 8-bit rounding.

Colour references, originals to blend over and masks often come at another size than the image
they serve. Going through an 8-bit PIL image would quantise them; here every channel is resized
as a 32-bit float PIL image (mode 'F'), so Lanczos, bicubic and bilinear keep their antialiasing
on downscale and lose no precision. 'area' uses OpenCV's INTER_AREA (pixel-area average when
shrinking, bilinear-like when enlarging).

Results are not clipped: Lanczos and bicubic overshoot at sharp edges, and callers that need
[0, 1] clip once, at the end.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError

RESIZE_METHODS = ("lanczos", "bicubic", "bilinear", "area", "nearest")

_PIL_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


def resize(arr: np.ndarray, size: tuple[int, int], method: str = "lanczos") -> np.ndarray:
    """Resample a float image to `size`.

    Parameters
    ----------
    arr : ndarray of shape (H, W) or (H, W, C)
        Any real dtype; computed in float32.
    size : (width, height)
        Target size in PIL order.
    method : str
        One of `RESIZE_METHODS`.

    Returns
    -------
    ndarray of shape (height, width) or (height, width, C), float32
        A float32 copy even when the size is unchanged.
    """
    if method not in RESIZE_METHODS:
        raise SdenhanceError(f"`method` must be one of {', '.join(RESIZE_METHODS)}; got {method!r}")
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise SdenhanceError(f"`size` must be at least 1×1 pixels; got {width}×{height}")
    src = np.asarray(arr, dtype=np.float32)
    if src.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) array; got shape {src.shape}")
    if src.shape[:2] == (height, width):
        return src.copy()
    if method == "area":
        import cv2

        out = cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)
        return out.reshape(height, width, *src.shape[2:])
    planes = src[..., None] if src.ndim == 2 else src
    resample = _PIL_FILTERS[method]
    out = np.stack(
        [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(planes[..., c])).resize(
                    (width, height), resample
                )
            )
            for c in range(planes.shape[2])
        ],
        axis=-1,
    )
    return out[..., 0] if src.ndim == 2 else out
