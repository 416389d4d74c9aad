"""Offline face detection and the geometry `facefix` repaints: soft face masks and square crops.

Boxes are half-open pixel rectangles ``(x0, y0, x1, y1)``; image sizes are PIL's ``(width,
height)``. The default detector is scikit-image's LBP frontal-face cascade, so nothing is
downloaded; an ONNX face detector file can be plugged in instead (`get_detector`). Detection
runs on a copy whose longest side is at most ``max_side`` (the cascade costs time per pixel,
and faces worth repainting stay far above its 24 px window) and boxes are mapped back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.ops.rect import Box, Rect


@dataclass(frozen=True)
class Face(Rect):
    """A detected face: half-open box in image pixels and a detector score (higher = surer)."""

    score: float

    def __post_init__(self) -> None:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise SdenhanceError(
                f"a face box needs x1 > x0 and y1 > y0; got ({self.x0}, {self.y0}, "
                f"{self.x1}, {self.y1})"
            )

    @property
    def center(self) -> tuple[float, float]:
        """``(x, y)`` of the box centre, in the same continuous pixel frame as the box edges."""
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)


# --- box maths ------------------------------------------------------------------------------


def box_overlaps(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection over the smaller area for every pair of (N, 4) float boxes."""
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    iw = np.clip(np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0), 0, None)
    ih = np.clip(np.minimum(y1[:, None], y1) - np.maximum(y0[:, None], y0), 0, None)
    inter = iw * ih
    area = (x1 - x0) * (y1 - y0)
    iou = inter / (area[:, None] + area - inter)
    contain = inter / np.minimum(area[:, None], area)
    return iou, contain


def suppress_overlaps(
    faces: list[Face], *, iou: float = 0.3, containment: float = 0.6
) -> list[Face]:
    """Best first; drop any face overlapping a kept one (IoU above `iou`, or mostly inside it)."""
    order = sorted(faces, key=lambda f: (-f.score, -f.width * f.height))
    if len(order) < 2:
        return order
    ious, contains = box_overlaps(np.array([f.box for f in order], dtype=np.float64))
    kept: list[int] = []
    for i in range(len(order)):
        if all(ious[i, k] <= iou and contains[i, k] <= containment for k in kept):
            kept.append(i)
    return [order[i] for i in kept]


# --- the default detector: scikit-image's LBP cascade ---------------------------------------


# --- an ONNX face detector (UltraFace layout) -----------------------------------------------


# --- registry -------------------------------------------------------------------------------


# --- detection ------------------------------------------------------------------------------


def to_rgb_u8(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL image of any mode, or float (H, W, 3) in [0, 1] / uint8 array -> uint8 (H, W, 3)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.ascontiguousarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise SdenhanceError(f"`image` must have shape (H, W, 3); got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise SdenhanceError(f"`image` must be float in [0, 1] or uint8; got {arr.dtype}")
    if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
        raise SdenhanceError("`image` values must be finite and in [0, 1]")
    return np.rint(arr * 255.0).astype(np.uint8)


# --- geometry for repainting ----------------------------------------------------------------


def _check_size(image_size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in image_size)
    if w < 1 or h < 1:
        raise SdenhanceError(f"`image_size` must be a positive (width, height); got {image_size}")
    return w, h


def face_mask(
    face: Face, image_size: tuple[int, int], *, dilate: float = 0.15, feather: float = 0.1
) -> np.ndarray:
    """Soft elliptical mask of a face, 1 = repaint, shape (H, W) float32.

    Detectors box the eyes-to-mouth area, so the ellipse inscribed in the box is grown by
    `dilate` times the box size on each side (per axis: width for x, height for y) to take in
    chin, forehead and cheeks, then falls from 1 to 0 with a smoothstep over a further
    `feather` times the size, so the repainted face blends in without a seam. The ellipses of
    constant value are all scaled copies of the box's: at normalised radius
    ``r = hypot((x - cx) / width, (y - cy) / height)`` (pixel centres) the mask is 1 for
    ``r ≤ 0.5 + dilate`` and exactly 0 for ``r ≥ 0.5 + dilate + feather``. Parts outside the
    image are simply cut off.

    Parameters
    ----------
    face : Face
    image_size : (width, height)
    dilate : float
        Growth of each semi-axis over half the box side, in box sides; > -0.5.
    feather : float
        Width of the soft edge in box sides; ≥ 0 (0 = hard edge).
    """
    w, h = _check_size(image_size)
    if not dilate > -0.5 or not feather >= 0 or not math.isfinite(dilate + feather):
        raise SdenhanceError(
            f"`dilate` must be > -0.5 and `feather` ≥ 0; got {dilate!r}, {feather!r}"
        )
    inner = 0.5 + dilate
    outer = inner + feather
    cx, cy = face.center
    mask = np.zeros((h, w), dtype=np.float32)
    # only the outer ellipse's bounding box can be non-zero
    bx0 = max(0, math.floor(cx - outer * face.width))
    bx1 = min(w, math.ceil(cx + outer * face.width))
    by0 = max(0, math.floor(cy - outer * face.height))
    by1 = min(h, math.ceil(cy + outer * face.height))
    if bx1 <= bx0 or by1 <= by0:
        return mask
    dx = (np.arange(bx0, bx1) + 0.5 - cx) / face.width
    dy = (np.arange(by0, by1) + 0.5 - cy) / face.height
    r = np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2)
    if feather == 0:
        mask[by0:by1, bx0:bx1] = r <= inner
        return mask
    t = np.clip((r - inner) / feather, 0.0, 1.0)
    mask[by0:by1, bx0:bx1] = 1.0 - t * t * (3.0 - 2.0 * t)
    return mask


def face_crop(
    face: Face, image_size: tuple[int, int], *, padding: float = 0.5, multiple: int = 8
) -> Box:
    """Square box around a face with room around it, to repaint at the model's resolution.

    The side is the face's longer side plus `padding` of it on each side, rounded up to a
    multiple of `multiple` (diffusion works on 8-px latents). The box is centred on the face
    (floor of the half-pixel) and then shifted, never shrunk, to lie inside the image. Along
    an axis shorter than that side the box is the whole axis, so the result is then not
    square (nor a multiple).

    Returns
    -------
    (x0, y0, x1, y1)
        Half-open, inside ``(0, 0, width, height)``.
    """
    w, h = _check_size(image_size)
    if not padding >= 0 or not math.isfinite(padding):
        raise SdenhanceError(f"`padding` must be ≥ 0; got {padding!r}")
    if multiple < 1:
        raise SdenhanceError(f"`multiple` must be ≥ 1; got {multiple!r}")
    size = max(face.width, face.height)
    side = math.ceil(size * (1 + 2 * padding) / multiple) * multiple

    def span(a0: int, a1: int, length: int) -> tuple[int, int]:
        if side >= length:
            return 0, length
        start = min(max((a0 + a1 - side) // 2, 0), length - side)
        return start, start + side

    x0, x1 = span(face.x0, face.x1, w)
    y0, y1 = span(face.y0, face.y1, h)
    return (x0, y0, x1, y1)
