"""The one image convention: PIL at the API, float32 HWC in [0, 1] inside, alpha kept aside.

(Load/save, metadata and format handling are added below the conversion helpers.)
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_array(image: Image.Image) -> np.ndarray:
    """PIL image -> float32 array in [0, 1]: (H, W, 3) for colour, (H, W) for 'L'/'F' images."""
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def from_array(array: np.ndarray) -> Image.Image:
    """float array in [0, 1] (H, W, 3) or (H, W) -> 8-bit PIL image, rounded to nearest."""
    arr = np.asarray(array, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    out = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L" if out.ndim == 2 else "RGB")
