"""The one image convention: PIL at the API, float32 HWC in [0, 1] inside, alpha kept aside.

Loading turns every supported file (PNG, JPEG, WebP, AVIF, TIFF, and HEIC/HEIF with the
`heic` extra) into 8-bit RGB plus an optional 'L' alpha, whatever its mode, bit depth or EXIF
orientation, and refuses oversized, truncated or foreign files with one line. RGB pixels stay
in their ICC profile's colour space; the profile, the EXIF (orientation reset) and XMP travel
with the image to its outputs. Saving is atomic and writes the run record
as AUTOMATIC1111 infotext plus an `sdenhance` JSON record, so other tools show the settings
and `sdenhance run` can reproduce them. Generation metadata of A1111, ComfyUI and Midjourney
images is read back so their prompt can be offered as the default.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.bombs import check_data_size
from sdenhance.io.convert import depth_mode, join_alpha, split_alpha
from sdenhance.io.deep import deep_from_array, orient
from sdenhance.io.depth import (
    exact_high_depth,
    from_high_depth,
    load_with_tifffile,
    tiff_photometric,
    to_8bit,
)
from sdenhance.io.exif_carry import carried_exif, carried_xmp
from sdenhance.io.formats import check_heif
from sdenhance.io.loaded import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    _orientation,
    apply_orientation,
    check_pixel_limit,
    finish_loaded,
    max_pixels_from_env,
    one_line,
)
from sdenhance.io.metadata import ImageMetadata, metadata_from_pil
from sdenhance.io.paths import require_file
from sdenhance.io.profiles import to_rgb

log = logging.getLogger("sdenhance")

"""Largest image (width × height) `load_image` decodes; `SDENHANCE_MAX_PIXELS` overrides it."""


# Pillow format name -> the format we report (MPO is the multi-picture JPEG of phones/cameras)
_LOAD_FORMATS = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "WEBP": "WEBP",
    "TIFF": "TIFF",
    "AVIF": "AVIF",
    "HEIF": "HEIF",
}
_FORMAT_NAMES = "PNG, JPEG, WebP, AVIF, HEIC or TIFF"


# --------------------------------------------------------------------------------------------
# Loading


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    metadata: bool = True,
) -> LoadedImage:
    """Read PNG/JPEG/WebP/AVIF/HEIC/TIFF as 8-bit RGB with its alpha aside as 'L'.

    Checks the format by content and the size from the header before any pixel is decoded
    (`max_pixels`, None = no cap; the default can be changed with `SDENHANCE_MAX_PIXELS`).
    Applies EXIF orientation, converts any mode and bit depth to 8-bit RGB (16-bit scaled, not
    clipped, and kept exactly in `deep`; float assumed in [0, 1]) and takes frame 0 of
    animations. RGB pixels stay in their ICC profile's space (the profile rides along in
    `image.info`); CMYK, Lab and profiled grey are converted to sRGB.
    `metadata=False` leaves the generation metadata unread (an empty `ImageMetadata`).
    """
    path = Path(path)
    if max_pixels == DEFAULT_MAX_PIXELS:
        max_pixels = max_pixels_from_env(max_pixels)
    notes: list[str] = []
    im = _open_checked(path, max_pixels)
    if im is None:  # a TIFF Pillow cannot parse (e.g. float RGB): tifffile reads it
        return load_with_tifffile(path, max_pixels)
    try:
        fmt = _LOAD_FORMATS[im.format or ""]
        frames = getattr(im, "n_frames", 1) or 1
        if frames > 1:
            im.seek(0)
            if im.format == "TIFF":
                notes.append(f"multi-page: used page 1 of {frames}")
            elif im.format == "MPO":
                notes.append(f"multi-picture JPEG: used image 1 of {frames}")
            else:
                notes.append(f"animated: used frame 0 of {frames}")
        _decode(im, path, fmt)
        source_mode = im.mode
        orientation = _orientation(im)
        icc = im.info.get("icc_profile")
        meta = metadata_from_pil(im, notes) if metadata else ImageMetadata()
        carried = {"exif": carried_exif(im, notes), "xmp": carried_xmp(im, notes)}
        array = exact_high_depth(im, path, fmt, notes)
        deep = _deep_pixels(im, array)
        if array is not None:
            source_mode = depth_mode(array)
            base, alpha = from_high_depth(array, notes, photometric=tiff_photometric(im))
        else:
            base, alpha = split_alpha(to_8bit(im, notes), to_rgb=False)
            if base is im:  # detach the pixels before the file closes
                base = im.copy()
    finally:
        im.close()
    rgb, carried["icc_profile"] = to_rgb(base, icc, notes)
    rgb, alpha = apply_orientation(rgb, alpha, orientation, notes)
    if deep is not None:
        deep = orient(deep, orientation)
    return finish_loaded(
        rgb, alpha, path, fmt, meta, notes, source_mode, carried=carried, deep=deep
    )


def _deep_pixels(im: Image.Image, array: Any) -> Any:
    """The exact pixels of a file with more than 8 bits per channel, else None."""
    if array is None and (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        array = np.asarray(im)
    if array is None:
        return None
    return deep_from_array(array, photometric=tiff_photometric(im))


def upright_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(W, H) of an image once loaded (EXIF orientation applied), from its header alone; None
    when the header cannot tell (loading the image then decides)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                return (h, w) if _orientation(im) in (5, 6, 7, 8) else (w, h)
    except Exception:  # unreadable here: the load reports it, per input
        return None


def _open_checked(path: Path, max_pixels: int | None) -> Image.Image | None:
    """Open the header only, refusing foreign formats and oversized images before decoding.

    Pillow's own decompression-bomb warning is caught here (never process-wide): our cap is
    the one that decides. Returns None for a TIFF only tifffile can parse.
    """
    require_file(path, "input")  # never open a FIFO, socket or device: reading could block
    check_heif(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError:
        im = _open_past_pillow_limit(path)  # our cap, checked below, decides
    except Image.UnidentifiedImageError:
        if _is_tiff(path):
            return None
        raise SdenhanceError(
            f"cannot read {path}: not an image in a supported format ({_FORMAT_NAMES})"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SdenhanceError(f"cannot read {path}: {one_line(exc)}") from None
    if im.format not in _LOAD_FORMATS:
        name = im.format
        im.close()
        raise SdenhanceError(f"{path}: {name} images are not supported; use {_FORMAT_NAMES}")
    try:
        check_pixel_limit(path, im.size, max_pixels)
        check_data_size(im, path)
    except SdenhanceError:
        im.close()
        raise
    return im


def _open_past_pillow_limit(path: Path) -> Image.Image:
    """Header of an image Pillow refused by size, read by the format's plugin directly.

    Pillow checks its fixed limit inside `Image.open`; the plugin classes parse the same
    header without it, so the caller's cap (not Pillow's) decides and the refusal can name
    the width and height.
    """
    from PIL import JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin

    for plugin in (
        PngImagePlugin.PngImageFile,
        JpegImagePlugin.JpegImageFile,
        WebPImagePlugin.WebPImageFile,
        TiffImagePlugin.TiffImageFile,
    ):
        try:
            return plugin(path)
        except (SyntaxError, OSError, ValueError, EOFError, TypeError):
            continue
        except Image.DecompressionBombError:  # WebP's plugin checks Pillow's limit itself
            break
    raise SdenhanceError(f"{path}: refused: the image is too large to decode safely")


def _decode(im: Image.Image, path: Path, fmt: str) -> None:
    """Decode the pixels; truncated or corrupt data is one user error, never a partial image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
    except MemoryError:
        width, height = im.size
        raise SdenhanceError(
            f"cannot read {path}: not enough memory for {width}x{height}"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning) as exc:
        raise SdenhanceError(
            f"cannot read {path}: {fmt} data is truncated or corrupt ({one_line(exc)})"
        ) from None


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# --------------------------------------------------------------------------------------------
# Saving


# --------------------------------------------------------------------------------------------
# Reading metadata


def read_metadata(source: str | os.PathLike[str] | Image.Image) -> ImageMetadata:
    """Generation metadata of an image file or PIL image (A1111, ComfyUI, Midjourney, ours)."""
    if isinstance(source, Image.Image):
        return metadata_from_pil(source)
    path = Path(source)
    im = _open_checked(path, max_pixels_from_env())
    if im is None:
        return load_image(path).metadata
    try:
        if im.format == "PNG":
            _decode(im, path, "PNG")  # text chunks after the pixels are read only then
        return metadata_from_pil(im)
    finally:
        im.close()


def as_image(image: Image.Image | str | os.PathLike[str]) -> Image.Image:
    """A PIL image as given, or loaded from a path with its alpha joined back."""
    if isinstance(image, Image.Image):
        return image
    loaded = load_image(image)
    return join_alpha(loaded.image, loaded.alpha)
