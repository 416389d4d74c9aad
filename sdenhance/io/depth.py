"""16-bit PNG/TIFF and float TIFF inputs scaled exactly to 8 bits (tifffile as fallback)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.convert import depth_mode
from sdenhance.io.deep import deep_from_array, orient
from sdenhance.io.exif import IMAGE_DESCRIPTION
from sdenhance.io.loaded import (
    LoadedImage,
    apply_orientation,
    check_pixel_limit,
    finish_loaded,
    one_line,
)
from sdenhance.io.metadata import ImageMetadata, read_description
from sdenhance.io.profiles import to_rgb

log = logging.getLogger("sdenhance")


def _scale_to_uint8(array: np.ndarray, notes: list[str]) -> np.ndarray:
    """Any integer or float pixel array -> uint8: integers scaled by their range with rounding
    (so 65535 -> 255 and nothing clips), floats taken as [0, 1]."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f":
        values = np.nan_to_num(array.astype(np.float64), nan=0.0)
        if values.size and (values.min() < 0.0 or values.max() > 1.0):
            notes.append("float values outside [0, 1] clipped")
        notes.append(f"{array.dtype.itemsize * 8}-bit float scaled to 8-bit")
        return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    if array.dtype.kind == "b":
        return array.astype(np.uint8) * 255
    values = array.astype(np.int64)
    # 32-bit integer pixels holding at most 65535 are 16-bit data (Pillow's "I" for 16-bit files)
    if array.dtype.itemsize <= 2 or (values.size and 0 <= values.min() and values.max() <= 65535):
        bits = 16 if array.dtype.itemsize >= 2 else 8
    else:
        bits = 32
    top = (1 << bits) - 1
    values = np.clip(values, 0, top)
    notes.append(f"{bits}-bit scaled to 8-bit")
    return ((values * 255 + top // 2) // top).astype(np.uint8)


def to_8bit(im: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode -> one of L, LA, RGB, RGBA, CMYK, LAB (8 bits per channel)."""
    mode = im.mode
    if mode in ("L", "RGB") and im.info.get("transparency") is not None:
        return im.convert("RGBA")
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK", "LAB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or im.info.get("transparency") is not None
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(im), notes), "L")
    if mode == "RGBa":
        return im.convert("RGBA")
    if mode == "La":
        return im.convert("LA")
    return im.convert("RGB")


def tiff_photometric(im: Image.Image) -> int | None:
    tags = getattr(im, "tag_v2", None)
    return tags.get(262) if tags is not None else None


def exact_high_depth(im: Image.Image, path: Path, fmt: str, notes: list[str]) -> np.ndarray | None:
    """The full-precision pixels of multi-channel 16-bit/float files, else None.

    Pillow keeps only the high byte of 16-bit RGB(A) and grey+alpha PNG/TIFF (no rounding) and
    has no float RGB mode; OpenCV (PNG) and tifffile (TIFF) read the exact values, which are
    then scaled with rounding. Single-channel 16-bit and float Pillow reads exactly itself.
    """
    if fmt == "PNG" and im.mode in ("RGB", "RGBA", "LA"):
        with open(path, "rb") as f:
            header = f.read(26)
        if len(header) == 26 and header[12:16] == b"IHDR" and header[24] == 16:
            import cv2

            array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if array is None or array.shape[:2] != (im.height, im.width):
                return None
            if array.ndim == 3 and array.shape[2] >= 3:
                array = array[:, :, [2, 1, 0, *range(3, array.shape[2])]]  # BGR(A) -> RGB(A)
            return array
    if fmt == "TIFF":
        bits = im.tag_v2.get(258) or (8,)
        bits = bits if isinstance(bits, tuple) else (bits,)
        if max(bits) > 8 and len(bits) > 1:
            try:
                array, _, _ = _tifffile_page(path)
            except Exception as exc:  # e.g. LZW needs the optional imagecodecs package
                log.debug("tifffile could not decode %s: %s", path, exc)
                notes.append(f"{max(bits)}-bit TIFF read at 8-bit precision ({one_line(exc)})")
                return None
            return array
    return None


def _tifffile_page(path: Path) -> tuple[np.ndarray, dict[int, Any], int]:
    """Pixels (H, W[, S]), tags and page count of page 1 of a TIFF, via tifffile."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        array = page.asarray()
        if page.axes.startswith("S") and array.ndim == 3:  # planar (separate) samples
            array = np.moveaxis(array, 0, -1)
        if array.ndim not in (2, 3) or 0 in array.shape:  # tifffile gives (0,) for bad data
            raise ValueError(f"no decodable pixels (got an array of shape {array.shape})")
        tags = {tag.code: tag.value for tag in page.tags.values()}
        return array, tags, len(tif.pages)


def load_with_tifffile(path: Path, max_pixels: int | None) -> LoadedImage:
    """TIFFs Pillow cannot parse (float RGB, unusual sample layouts)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            check_pixel_limit(path, (int(page.imagewidth), int(page.imagelength)), max_pixels)
        array, tags, pages = _tifffile_page(path)
    except SdenhanceError:
        raise
    except Exception as exc:  # tifffile raises many types for broken or unsupported files
        raise SdenhanceError(
            f"cannot read {path}: TIFF data not decodable ({one_line(exc)})"
        ) from None
    notes = [f"multi-page: used page 1 of {pages}"] if pages > 1 else []
    source_mode = depth_mode(array)
    base, alpha = from_high_depth(array, notes, photometric=tags.get(262))
    icc = tags.get(34675)
    rgb, icc = to_rgb(base, icc if isinstance(icc, bytes) else None, notes)
    orientation = int(tags.get(274, 1) or 1)
    rgb, alpha = apply_orientation(rgb, alpha, orientation, notes)
    deep = deep_from_array(array, photometric=tags.get(262))
    deep = orient(deep, orientation) if deep is not None else None
    description = tags.get(IMAGE_DESCRIPTION)
    metadata = ImageMetadata()
    if isinstance(description, str):
        read_description(description, metadata)
    carried = {"icc_profile": icc}
    return finish_loaded(
        rgb, alpha, path, "TIFF", metadata, notes, source_mode, carried=carried, deep=deep
    )


def from_high_depth(
    array: np.ndarray, notes: list[str], *, photometric: Any = None
) -> tuple[Image.Image, Image.Image | None]:
    """(H, W[, C]) array of any depth -> 8-bit base image (L, RGB, CMYK) and alpha."""
    data = _scale_to_uint8(array, notes)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim == 2:
        if photometric == 0:  # MinIsWhite
            data = 255 - data
        return Image.fromarray(data, "L"), None
    channels = data.shape[2]
    if photometric == 5 and channels >= 4:
        return Image.fromarray(np.ascontiguousarray(data[:, :, :4]), "CMYK"), None
    if channels == 2:
        return Image.fromarray(np.ascontiguousarray(data[:, :, 0]), "L"), Image.fromarray(
            np.ascontiguousarray(data[:, :, 1]), "L"
        )
    rgb = Image.fromarray(np.ascontiguousarray(data[:, :, :3]), "RGB")
    alpha = Image.fromarray(np.ascontiguousarray(data[:, :, 3]), "L") if channels >= 4 else None
    if channels > 4:
        notes.append(f"used the first 4 of {channels} channels")
    return rgb, alpha
