"""The one image convention: PIL at the API, float32 HWC in [0, 1] inside, alpha kept aside.

Loading turns every supported file (PNG, JPEG, WebP, TIFF) into 8-bit sRGB plus an optional
'L' alpha, whatever its mode, bit depth, colour profile or EXIF orientation, and refuses
oversized, truncated or foreign files with one line. Saving is atomic and writes the run record
as AUTOMATIC1111 infotext plus an `sdenhance` JSON record, so other tools show the settings
and `sdenhance run` can reproduce them. Generation metadata of A1111, ComfyUI and Midjourney
images is read back so their prompt can be offered as the default.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms

from .errors import SdenhanceError
from .metadata import ImageMetadata, format_infotext, metadata_from_pil, read_description

log = logging.getLogger("sdenhance")

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width × height) `load_image` decodes; `SDENHANCE_MAX_PIXELS` overrides it."""

MAX_PIXELS_ENV = "SDENHANCE_MAX_PIXELS"

# Pillow format name -> the format we report (MPO is the multi-picture JPEG of phones/cameras)
_LOAD_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP", "TIFF": "TIFF"}
SAVE_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

_USER_COMMENT = 0x9286
_IMAGE_DESCRIPTION = 0x010E
_SOFTWARE = 0x0131
_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_JPEG_MAX_EXIF = 65533  # one APP1 segment

_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


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


@dataclass
class LoadedImage:
    """An image as the stages want it: 8-bit sRGB, alpha aside, plus what happened on the way.

    `notes` are things worth telling the user (frame dropped, profile converted, bits reduced);
    `source_mode` is the mode of the file's pixels before conversion (e.g. "P", "I;16", "CMYK").
    """

    image: Image.Image
    alpha: Image.Image | None
    path: Path
    format: str
    metadata: ImageMetadata
    notes: list[str] = field(default_factory=list)
    source_mode: str = ""

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


# --------------------------------------------------------------------------------------------
# Loading


def max_pixels_from_env(default: int | None = DEFAULT_MAX_PIXELS) -> int | None:
    """The pixel cap: `SDENHANCE_MAX_PIXELS` when set (a positive integer), else `default`."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise SdenhanceError(
            f"{MAX_PIXELS_ENV}={text!r} is invalid; use a positive whole number of pixels"
        )
    return value


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Read PNG/JPEG/WebP/TIFF as 8-bit sRGB RGB with its alpha aside as 'L'.

    Checks the format by content and the size from the header before any pixel is decoded
    (`max_pixels`, None = no cap; the default can be changed with `SDENHANCE_MAX_PIXELS`).
    Applies EXIF orientation, converts any mode, bit depth and embedded ICC profile to 8-bit
    sRGB (16-bit scaled, not clipped; float assumed in [0, 1]) and takes frame 0 of animations.
    """
    path = Path(path)
    if max_pixels == DEFAULT_MAX_PIXELS:
        max_pixels = max_pixels_from_env(max_pixels)
    notes: list[str] = []
    im = _open_checked(path, max_pixels)
    if im is None:  # a TIFF Pillow cannot parse (e.g. float RGB): tifffile reads it
        return _load_with_tifffile(path, max_pixels)
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
        metadata = metadata_from_pil(im)
        array = _exact_high_depth(im, path, fmt, notes)
        if array is not None:
            source_mode = _depth_mode(array)
            base, alpha = _from_high_depth(array, notes, photometric=_tiff_photometric(im))
        else:
            base, alpha = _split_alpha(_to_8bit(im, notes))
            if base is im:  # detach the pixels before the file closes
                base = im.copy()
    finally:
        im.close()
    rgb = _to_srgb(base, icc, notes)
    rgb, alpha = _apply_orientation(rgb, alpha, orientation, notes)
    return _loaded(rgb, alpha, path, fmt, metadata, notes, source_mode)


# notes that describe faithful conversions: logged at debug level, not shown in every batch
_ROUTINE_NOTES = (
    "applied EXIF orientation",
    "scaled to 8-bit",
    "with the embedded ICC profile",
    "CIELab",
)


def _loaded(
    rgb: Image.Image,
    alpha: Image.Image | None,
    path: Path,
    fmt: str,
    metadata: ImageMetadata,
    notes: list[str],
    source_mode: str,
) -> LoadedImage:
    """Drop the file's `info` from the result: an ICC profile or transparency key left there
    would be written again by Pillow on save, describing pixels that no longer match."""
    rgb.info = {}
    if alpha is not None:
        alpha.info = {}
    for note in notes:
        routine = any(text in note for text in _ROUTINE_NOTES)
        log.log(logging.DEBUG if routine else logging.INFO, "%s: %s", path.name, note)
    return LoadedImage(rgb, alpha, path, fmt, metadata, notes, source_mode)


def _open_checked(path: Path, max_pixels: int | None) -> Image.Image | None:
    """Open the header only, refusing foreign formats and oversized images before decoding.

    Pillow's own decompression-bomb warning is caught here (never process-wide): our cap is
    the one that decides. Returns None for a TIFF only tifffile can parse.
    """
    if not path.exists():
        raise SdenhanceError(f"input not found: {path}")
    if path.is_dir():
        raise SdenhanceError(f"input {path} is a folder, not an image")
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
            f"cannot read {path}: not an image in a supported format (PNG, JPEG, WebP, TIFF)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SdenhanceError(f"cannot read {path}: {_one_line(exc)}") from None
    if im.format not in _LOAD_FORMATS:
        name = im.format
        im.close()
        raise SdenhanceError(
            f"{path}: {name} images are not supported; use PNG, JPEG, WebP or TIFF"
        )
    try:
        _check_size(path, im.size, max_pixels)
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


def _check_size(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise SdenhanceError(f"cannot read {path}: invalid size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise SdenhanceError(
            f"{path}: {width}x{height} ({_pixel_count(width * height)}) is larger than the limit of "
            f"{_pixel_count(max_pixels)}; raise it with {MAX_PIXELS_ENV}=<pixels> if you trust the file"
        )


def _pixel_count(n: int) -> str:
    """'400.0 MP', or '3,072 pixels' where megapixels would round to 0.0 or 0.1."""
    return f"{n / 1e6:.1f} MP" if n >= 150_000 else f"{n:,} pixels"


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
            f"cannot read {path}: {fmt} data is truncated or corrupt ({_one_line(exc)})"
        ) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not make the image unreadable
        log.debug("unreadable EXIF block ignored", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(
    rgb: Image.Image, alpha: Image.Image | None, orientation: int, notes: list[str]
) -> tuple[Image.Image, Image.Image | None]:
    """Rotate/flip pixels upright as EXIF orientation says (what ImageOps.exif_transpose does),
    to colour and alpha alike, so the output needs no orientation tag."""
    if orientation not in _TRANSPOSE:
        return rgb, alpha
    for method in _TRANSPOSE[orientation]:
        rgb = rgb.transpose(method)
        alpha = alpha.transpose(method) if alpha is not None else None
    notes.append(f"applied EXIF orientation {orientation}")
    return rgb, alpha


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


def _to_8bit(im: Image.Image, notes: list[str]) -> Image.Image:
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


def _split_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    if im.mode == "RGBA":
        return im.convert("RGB"), im.getchannel("A")
    if im.mode == "LA":
        return im.getchannel("L"), im.getchannel("A")
    return im, None


def _depth_mode(array: np.ndarray) -> str:
    """A mode-like label for pixels Pillow has no mode for, e.g. "RGB;16" or "RGBA;F32"."""
    channels = 1 if array.ndim == 2 else array.shape[2]
    kind = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels, f"{channels}ch")
    return f"{kind};{'F' if array.dtype.kind == 'f' else ''}{array.dtype.itemsize * 8}"


def _tiff_photometric(im: Image.Image) -> int | None:
    tags = getattr(im, "tag_v2", None)
    return tags.get(262) if tags is not None else None


def _exact_high_depth(im: Image.Image, path: Path, fmt: str, notes: list[str]) -> np.ndarray | None:
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
                notes.append(f"{max(bits)}-bit TIFF read at 8-bit precision ({_one_line(exc)})")
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


def _load_with_tifffile(path: Path, max_pixels: int | None) -> LoadedImage:
    """TIFFs Pillow cannot parse (float RGB, unusual sample layouts)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            _check_size(path, (int(page.imagewidth), int(page.imagelength)), max_pixels)
        array, tags, pages = _tifffile_page(path)
    except SdenhanceError:
        raise
    except Exception as exc:  # tifffile raises many types for broken or unsupported files
        raise SdenhanceError(
            f"cannot read {path}: TIFF data not decodable ({_one_line(exc)})"
        ) from None
    notes = [f"multi-page: used page 1 of {pages}"] if pages > 1 else []
    source_mode = _depth_mode(array)
    base, alpha = _from_high_depth(array, notes, photometric=tags.get(262))
    rgb = _to_srgb(base, tags.get(34675), notes)
    orientation = tags.get(274, 1)
    rgb, alpha = _apply_orientation(rgb, alpha, int(orientation) if orientation else 1, notes)
    description = tags.get(_IMAGE_DESCRIPTION)
    metadata = ImageMetadata()
    if isinstance(description, str):
        read_description(description, metadata)
    return _loaded(rgb, alpha, path, "TIFF", metadata, notes, source_mode)


def _from_high_depth(
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


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


_PROFILE_SPACES = {"RGB": "RGB ", "L": "GRAY", "CMYK": "CMYK", "LAB": "Lab "}


def _to_srgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    """L/RGB/CMYK/LAB -> sRGB RGB through the embedded ICC profile when there is one."""
    if im.mode == "LAB":
        notes.append("converted CIELab to sRGB")
        lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        return ImageCms.profileToProfile(im, lab, _srgb_profile(), outputMode="RGB")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            space = profile.profile.xcolor_space
            name = (ImageCms.getProfileDescription(profile) or "").strip()
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            notes.append(f"ignored an unreadable ICC profile ({_one_line(exc)})")
            profile = None
        if profile is not None:
            if space != _PROFILE_SPACES.get(im.mode):
                notes.append(
                    f"ignored an ICC profile for {space.strip()} data on a {im.mode} image"
                )
            elif im.mode == "RGB" and name.lower().startswith("srgb"):
                return im  # already sRGB: keep the pixels exact
            else:
                try:
                    out = ImageCms.profileToProfile(im, profile, _srgb_profile(), outputMode="RGB")
                except ImageCms.PyCMSError as exc:
                    notes.append(
                        f"ignored an ICC profile that could not be applied ({_one_line(exc)})"
                    )
                else:
                    label = f" '{name}'" if name else ""
                    notes.append(
                        f"converted {im.mode} to sRGB with the embedded ICC profile{label}"
                    )
                    return out
    if im.mode == "CMYK":
        notes.append("converted CMYK to RGB without a colour profile (approximate colours)")
    return im if im.mode == "RGB" else im.convert("RGB")


# --------------------------------------------------------------------------------------------
# Saving


def save_image(
    image: Image.Image,
    path: str | os.PathLike[str],
    *,
    alpha: Image.Image | None = None,
    metadata: Mapping[str, Any] | None = None,
    protect: Iterable[str | os.PathLike[str]] = (),
    quality: int = 95,
) -> Path:
    """Write `image` atomically as PNG/JPEG/WebP/TIFF (by suffix) with its run record.

    `image` is RGB, RGBA (alpha from it) or L; an explicit `alpha` ('L', same size) replaces
    it. The file appears complete or not at all (temp file, fsync, rename), so an interrupt
    never leaves a broken output. `path` may not be any file in `protect` (the inputs).
    `metadata` (the run record) is written as A1111 infotext and as `sdenhance` JSON.
    """
    path = Path(path)
    fmt = SAVE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SdenhanceError(
            f"output {path}: unsupported suffix {path.suffix or '(none)'!r}; use .png, .jpg, .jpeg, .webp, .tif or .tiff"
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise SdenhanceError(f"`quality` must be a whole number from 1 to 100; got {quality!r}")
    for other in protect:
        if _same_file(path, Path(other)):
            raise SdenhanceError(
                f"refusing to overwrite the input {other}; choose another output path"
            )
    if path.is_dir():
        raise SdenhanceError(f"output {path} is a folder; give a file name")
    out = _prepare_for_save(image, alpha, fmt, path)
    params = _save_params(out, fmt, metadata, quality)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SdenhanceError(f"cannot create folder {path.parent}: {exc.strerror or exc}") from None
    _write_atomic(path, lambda f: out.save(f, format=fmt, **params))
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _prepare_for_save(
    image: Image.Image, alpha: Image.Image | None, fmt: str, path: Path
) -> Image.Image:
    if image.mode in ("RGBA", "LA"):
        base, own = _split_alpha(image)
        alpha = alpha if alpha is not None else own
    elif image.mode in ("RGB", "L"):
        base = image
    elif image.mode in ("P", "PA") or image.mode.startswith(("I", "F", "1")):
        base, own = _split_alpha(_to_8bit(image, []))
        alpha = alpha if alpha is not None else own
    else:
        base = image.convert("RGB")
    if alpha is not None:
        if alpha.size != base.size:
            raise ValueError(
                f"alpha is {alpha.size[0]}x{alpha.size[1]} but the image is {base.size[0]}x{base.size[1]}"
            )
        alpha = alpha if alpha.mode == "L" else alpha.convert("L")
    if fmt == "JPEG":
        if alpha is not None:
            log.warning("%s: JPEG has no transparency; the alpha channel was dropped", path)
        return _without_info(base)
    if fmt == "WEBP" and base.mode == "L":
        base = base.convert("RGB")
    if alpha is None:
        return _without_info(base)
    out = base.convert("RGBA" if base.mode == "RGB" else "LA")
    out.putalpha(alpha)
    return out


def _without_info(image: Image.Image) -> Image.Image:
    """The image without `info`: Pillow would otherwise write a stale ICC profile, transparency
    key or comment from it. Copies only when there is something to drop (the caller's image
    is never changed)."""
    if not image.info:
        return image
    out = image.copy()
    out.info = {}
    return out


def _save_params(
    image: Image.Image, fmt: str, metadata: Mapping[str, Any] | None, quality: int
) -> dict[str, Any]:
    """Encoder options plus the metadata in the place each format keeps it."""
    from . import __version__

    params: dict[str, Any] = {}
    if fmt == "JPEG":
        params.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        params.update(quality=quality, lossless=quality == 100, exact=True)
    elif fmt == "TIFF":
        params.update(compression="tiff_adobe_deflate")
    software = f"sdenhance {__version__}"
    if metadata is None:
        return params
    record = {"version": __version__, **{k: v for k, v in metadata.items() if k != "version"}}
    record_json = json.dumps(record, default=_json_default, ensure_ascii=False)
    infotext = format_infotext(record, size=image.size)
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("parameters", infotext)
        info.add_text("sdenhance", record_json)
        info.add_text("Software", software)
        params["pnginfo"] = info
    elif fmt == "TIFF":
        # TIFF ASCII tags are 7-bit: JSON with \u escapes keeps every character
        described = json.dumps({"sdenhance": record, "parameters": infotext}, default=_json_default)
        params["tiffinfo"] = {_IMAGE_DESCRIPTION: described, _SOFTWARE: software}
    else:
        exif = _exif_with(infotext, record, software)
        if fmt == "JPEG" and len(exif.tobytes()) > _JPEG_MAX_EXIF:
            log.warning("run record too long for JPEG EXIF; kept the A1111 parameters only")
            exif = _exif_with(infotext, None, software)
            if len(exif.tobytes()) > _JPEG_MAX_EXIF:
                log.warning("A1111 parameters too long for JPEG EXIF; metadata not written")
                exif = _exif_with(None, None, software)
        params["exif"] = exif
    return params


def _exif_with(infotext: str | None, record: Mapping[str, Any] | None, software: str) -> Image.Exif:
    """EXIF as A1111 writes it: infotext in UserComment with the 'UNICODE' charset header and
    big-endian UTF-16; our JSON record (ASCII-escaped) in ImageDescription."""
    exif = Image.Exif()
    exif[_SOFTWARE] = software
    if record is not None:
        exif[_IMAGE_DESCRIPTION] = json.dumps({"sdenhance": record}, default=_json_default)
    if infotext is not None:
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\x00" + infotext.encode("utf-16-be")
    return exif


def _json_default(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _write_atomic(path: Path, write) -> None:
    """Write through a hidden temp file in the target folder, fsync, then rename over `path`;
    on any failure (interrupts included) the temp file goes and `path` is untouched."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise SdenhanceError(f"cannot write {path}: {exc.strerror or _one_line(exc)}") from None
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
