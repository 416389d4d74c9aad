"""PIL images to and from the float32 HWC arrays the maths works on; alpha split and joined."""

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


def split_alpha(
    image: Image.Image, *, to_rgb: bool = True
) -> tuple[Image.Image, Image.Image | None]:
    """Colour part and alpha ('L') of any PIL image; alpha is None when the image has none.

    `to_rgb=True` (the stages' convention) gives RGB; `to_rgb=False` keeps a grey image grey
    (the loader's and saver's convention: there a palette image has already been expanded).
    """
    has_alpha = image.mode in ("RGBA", "LA") or (
        to_rgb and image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return (image.convert("RGB") if to_rgb and image.mode != "RGB" else image), None
    if image.mode == "LA" and not to_rgb:
        return image.getchannel("L"), image.getchannel("A")
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    return rgba.convert("RGB"), rgba.getchannel("A")


def join_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Put alpha back, resized with Lanczos when the stage changed the size."""
    if alpha is None:
        return rgb
    if alpha.size != rgb.size:
        alpha = alpha.resize(rgb.size, Image.Resampling.LANCZOS)
    out = rgb.convert("RGBA")
    out.putalpha(alpha)
    return out


def depth_mode(array: np.ndarray) -> str:
    """A mode-like label for pixels Pillow has no mode for, e.g. "RGB;16" or "RGBA;F32"."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    kind = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels}ch")
    return f"{kind};{'F' if array.dtype.kind == 'f' else ''}{array.dtype.itemsize * 8}"
