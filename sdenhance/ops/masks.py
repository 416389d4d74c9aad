"""Mask maths for inpainting and object removal: reading, checking, morphology, crops, pastes.

Masks are float32 arrays of shape (H, W) in [0, 1]; 1 means "repaint". Boxes are half-open
pixel rectangles ``(x0, y0, x1, y1)``: columns x0..x1-1 and rows y0..y1-1. Image sizes are
PIL's ``(width, height)``. Everything here is pure numpy/PIL/OpenCV so it is tested directly.

The one guarantee the inpainting pipeline rests on lives in `paste` and `composite_exact`:
wherever the blend mask is exactly 0 the output is bit-identical to the original.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.ops.rect import Box

log = logging.getLogger("sdenhance")

# Rec. 601 luma weights in per mille, as Pillow's own RGB -> L conversion uses.
_LUMA = np.array([299, 587, 114], dtype=np.int64)
_ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


# --- reading ----------------------------------------------------------------------------------


def mask_from_image(mask_img: Image.Image) -> np.ndarray:
    """Binary mask from a mask image of any mode: white (≥ 50 %) = repaint.

    Greyscale modes use their value: '1', 'L' (0..255), 'I;16*' and 'I' (0..65535, the range
    Pillow gives 16-bit files), 'F' (0..1). Colour modes use Rec. 601 luminance of the colour
    as seen over black, so transparent pixels never select anything whatever RGB they hide.
    A mask painted in one flat colour whose shape lives only in alpha (a brush layer exported
    on transparency) uses alpha instead: opaque = repaint. Thresholds are exact integer
    comparisons, so 128 of 255 selects and 127 does not.

    Parameters
    ----------
    mask_img : PIL.Image.Image
        The mask, any mode Pillow can convert to RGB.

    Returns
    -------
    ndarray of shape (H, W), float32
        0.0 or 1.0 per pixel.
    """
    mode = mask_img.mode
    if mode == "1":
        return np.asarray(mask_img, dtype=np.float32)
    if mode == "L":
        return (np.asarray(mask_img, dtype=np.int64) * 2 >= 255).astype(np.float32)
    if mode in _SIXTEEN_BIT:
        values = np.clip(np.asarray(mask_img).astype(np.int64), 0, 65535)
        return (values * 2 >= 65535).astype(np.float32)
    if mode == "F":
        return (np.asarray(mask_img, dtype=np.float32) >= 0.5).astype(np.float32)

    has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in mask_img.info)
    try:
        rgba = mask_img.convert("RGBA") if has_alpha else mask_img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise SdenhanceError(
            f"cannot read a mask from a {mode!r} image ({exc}); save it as greyscale or RGB PNG"
        ) from None
    arr = np.asarray(rgba, dtype=np.int64)
    luma = arr[..., :3] @ _LUMA  # 0 .. 255_000
    if arr.shape[-1] == 3:
        return (luma * 2 >= 255_000).astype(np.float32)
    alpha = arr[..., 3]
    rgb_flat = bool(np.all(arr[..., :3] == arr[:1, :1, :3]))
    if rgb_flat and alpha.min() != alpha.max():
        return (alpha * 2 >= 255).astype(np.float32)
    return (luma * alpha * 2 >= 255_000 * 255).astype(np.float32)


def mask_from_alpha(alpha: Image.Image) -> np.ndarray:
    """Binary mask from an image's alpha: transparent (alpha < 50 %) = repaint.

    Parameters
    ----------
    alpha : PIL.Image.Image
        Mode 'L' alpha channel (an image with an alpha band has it taken out).

    Returns
    -------
    ndarray of shape (H, W), float32
        1.0 where alpha ≤ 127 of 255, else 0.0.
    """
    if alpha.mode in _ALPHA_MODES:
        alpha = alpha.getchannel("A")
    elif alpha.mode != "L":
        alpha = alpha.convert("L")
    return (np.asarray(alpha, dtype=np.int64) * 2 < 255).astype(np.float32)


def check_mask(
    mask: np.ndarray, image_size: tuple[int, int], *, resize: bool = False
) -> np.ndarray:
    """Mask checked against its image: same size (or stretched), not empty.

    A full mask is allowed (every pixel is repainted) and logged as a warning, because it is
    rarely meant and nothing of the original survives.

    Parameters
    ----------
    mask : ndarray of shape (h, w)
        Values in [0, 1].
    image_size : (W, H)
        The image the mask applies to.
    resize : bool
        Stretch a mask of another size with nearest neighbour (keeps it binary) instead of
        refusing it.

    Returns
    -------
    ndarray of shape (H, W), float32

    Raises
    ------
    SdenhanceError
        Size mismatch without `resize` (both sizes and the `--mask-resize` fix named), or a
        mask that selects no pixel.
    """
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W); got {mask.shape}")
    width, height = image_size
    if mask.shape != (height, width):
        if not resize:
            raise SdenhanceError(
                f"mask size {mask.shape[1]}×{mask.shape[0]} does not match the image size "
                f"{width}×{height}; give a mask of the image's size or use --mask-resize to "
                "stretch it (nearest neighbour)"
            )
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    if not np.any(mask > 0):
        raise SdenhanceError(
            "mask selects nothing: no pixel is white (≥ 50 %) in the mask (or transparent, "
            "for an alpha mask); paint the area to change white"
        )
    if np.all(mask > 0):
        log.warning("the mask covers the whole image: every pixel will be repainted")
    return mask


# --- morphology -------------------------------------------------------------------------------


def _disk(radius: int) -> np.ndarray:
    """Structuring element of all offsets (dx, dy) with dx² + dy² ≤ radius²."""
    yy, xx = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy <= radius * radius).astype(np.uint8)


def _distance_to(selected: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance from each pixel centre to the nearest selected pixel centre.

    The image border is not a selected pixel; with nothing selected every distance is huge.
    """
    return cv2.distanceTransform(
        np.where(selected, 0, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
    )


def _within(distance: np.ndarray, radius: int) -> np.ndarray:
    # distances are square roots of integers: halfway between r² and r² + 1 in squared terms
    # separates "≤ r" from "> r" robustly against float32 rounding
    return distance <= math.sqrt(radius * radius + 0.5)


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """Grow (px > 0) or shrink (px < 0) a mask by a Euclidean disk of radius |px|.

    Exact semantics, on pixel centres: growing selects every pixel within distance ≤ px of a
    selected pixel (one pixel grown by 1 becomes the 5-pixel plus, by 2 the 13-pixel disk);
    shrinking keeps a pixel only if every pixel within distance ≤ |px| inside the image is
    selected, so a square of side s becomes side s - 2|px| and a mask touching the image border
    is not eaten from the border. Grow then shrink is a closing. Binary masks go through an
    exact distance transform (fast at any radius); soft masks through grey dilation/erosion
    (max/min over the disk), which agrees on binary input.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Values in [0, 1].
    px : int
        Radius in pixels; 0 returns a copy.

    Returns
    -------
    ndarray of shape (H, W), float32
    """
    mask = np.asarray(mask, dtype=np.float32)
    if px == 0:
        return mask.copy()
    radius = abs(int(px))
    if np.all((mask == 0) | (mask == 1)):
        if px > 0:
            return _within(_distance_to(mask > 0), radius).astype(np.float32)
        return (~_within(_distance_to(mask == 0), radius)).astype(np.float32)
    op = cv2.dilate if px > 0 else cv2.erode
    return op(mask, _disk(radius))


def feather(mask: np.ndarray, px: float) -> np.ndarray:
    """Soft outward edge of width px: 1 on the mask, a smoothstep ramp to exactly 0 at px.

    Each pixel at distance d from the nearest selected pixel (value ≥ 0.5) gets
    ``s(1 - d / px)`` with ``s(t) = 3t² - 2t³``, and keeps its own value where that is larger.
    Guarantee: the result is exactly 0 wherever the mask is 0 and d ≥ px, i.e. a feather never
    reaches more than px beyond the (grown) mask, and every pixel farther away stays
    bit-identical after `paste`/`composite_exact`. A Gaussian blur was not used because its tail
    leaves tiny non-zero weights far out (or truncation steps), and it also dims the mask inside;
    this ramp keeps the whole mask fully repainted and is smooth (C¹) at both ends, so no band
    shows where it starts or stops. Pick the crop padding ≥ px so the ramp fits in the crop.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Values in [0, 1].
    px : float
        Feather width in pixels, ≥ 0; below 1 nothing changes.

    Returns
    -------
    ndarray of shape (H, W), float32
    """
    if px < 0:
        raise ValueError(f"feather width must be ≥ 0; got {px}")
    mask = np.asarray(mask, dtype=np.float32)
    if px < 1:
        return mask.copy()
    t = np.clip(1.0 - _distance_to(mask >= 0.5) / np.float32(px), 0.0, 1.0)
    ramp = t * t * (3.0 - 2.0 * t)
    return np.maximum(mask, ramp.astype(np.float32))


# --- boxes ------------------------------------------------------------------------------------


def bbox(mask: np.ndarray) -> Box | None:
    """Half-open bounding box ``(x0, y0, x1, y1)`` of the pixels > 0, or None if there are none."""
    mask = np.asarray(mask)
    cols = np.flatnonzero(np.any(mask > 0, axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(np.any(mask > 0, axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def labelled(mask: np.ndarray) -> tuple[np.ndarray, list[Box]]:
    """Label image (0 = background, k = region k) and the box of each region 1..n."""
    selected = (np.asarray(mask) > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(selected, connectivity=8)
    boxes = []
    for label in range(1, count):
        x, y, w, h = (int(v) for v in stats[label, :4])
        boxes.append((x, y, x + w, y + h))
    return labels, boxes


def components(mask: np.ndarray) -> list[Box]:
    """Half-open bounding boxes of the 8-connected regions of pixels > 0, in raster order
    of each region's first pixel."""
    return labelled(mask)[1]


# --- crop and paste ---------------------------------------------------------------------------
