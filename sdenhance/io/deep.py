"""Pixels at more than 8 bits, kept beside the 8-bit image for stages that are pure colour maths.

A 16-bit PNG or TIFF (or a float TIFF) loads as the usual 8-bit RGB image, which every stage
takes, plus a `DeepImage` holding the exact values. Colour fix, blend and a Lanczos/bicubic
resize are arithmetic on floats, so a chain of only those runs on the deep pixels and the
output is written back at 16 bits instead of being rounded to 8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image


@dataclass
class DeepImage:
    """RGB pixels (H, W, 3) as uint16 or float32 in [0, 1], alpha (H, W) likewise or None, and
    the `info` a PIL image would carry (ICC profile, EXIF, XMP, run record)."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def floats(self) -> np.ndarray:
        """The colour pixels as float32 (H, W, 3) in [0, 1]."""
        return as_float(self.pixels)

    def alpha_floats(self) -> np.ndarray | None:
        return None if self.alpha is None else as_float(self.alpha)

    def to_uint16(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Colour and alpha as uint16, rounded to nearest."""
        alpha = None if self.alpha is None else as_uint16(self.alpha)
        return as_uint16(self.pixels), alpha

    def to_image(self) -> Image.Image:
        """The 8-bit PIL image (RGB or RGBA) of these pixels, `info` included."""
        rgb = Image.fromarray(_to_uint8(self.floats()), "RGB")
        if self.alpha is not None:
            rgb.putalpha(Image.fromarray(_to_uint8(as_float(self.alpha)), "L"))
        rgb.info = dict(self.info)
        return rgb


def as_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    return np.asarray(array, dtype=np.float32)


def as_uint16(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        return array
    return np.clip(np.rint(np.asarray(array, np.float64) * 65535.0), 0, 65535).astype(np.uint16)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def deep_from_array(array: np.ndarray, photometric: Any = None) -> DeepImage | None:
    """The exact pixels of a high-depth array (H, W[, C]): uint16 RGB plus alpha, or None when
    the data has 8 bits or is not grey/RGB (CMYK, more than 4 channels)."""
    if array.dtype.kind not in "uif" or (array.dtype.kind in "ui" and array.dtype.itemsize < 2):
        return None
    if photometric not in (None, 0, 1, 2):
        return None
    data = _scaled_uint16(array)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim == 2:
        grey = 65535 - data if photometric == 0 else data
        return DeepImage(np.repeat(grey[:, :, None], 3, axis=2))
    channels = data.shape[2]
    if channels == 2:
        return DeepImage(np.repeat(data[:, :, :1], 3, axis=2), data[:, :, 1].copy())
    if channels in (3, 4):
        alpha = data[:, :, 3].copy() if channels == 4 else None
        return DeepImage(np.ascontiguousarray(data[:, :, :3]), alpha)
    return None


def _scaled_uint16(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f":
        values = np.nan_to_num(array.astype(np.float64), nan=0.0)
        return np.clip(np.rint(values * 65535.0), 0, 65535).astype(np.uint16)
    values = array.astype(np.int64)
    top = (
        65535 if array.dtype.itemsize <= 2 or (values.size and values.max() <= 65535) else 2**32 - 1
    )
    values = np.clip(values, 0, top)
    if top == 65535:
        return values.astype(np.uint16)
    return ((values * 65535 + top // 2) // top).astype(np.uint16)


def orient(deep: DeepImage, orientation: int) -> DeepImage:
    """Turn the arrays upright as EXIF `orientation` says (what the 8-bit loader does)."""
    turn = _ORIENT.get(orientation)
    if turn is None:
        return deep
    alpha = None if deep.alpha is None else np.ascontiguousarray(turn(deep.alpha))
    return DeepImage(np.ascontiguousarray(turn(deep.pixels)), alpha, deep.info)


def _transpose(a: np.ndarray) -> np.ndarray:
    return a.swapaxes(0, 1)


_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: _transpose,
    6: lambda a: np.rot90(a, -1),
    7: lambda a: _transpose(a)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
