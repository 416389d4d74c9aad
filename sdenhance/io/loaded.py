"""The loaded-image record, the pixel limit and the checks shared by every loader."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.exif import ORIENTATION
from sdenhance.io.metadata import ImageMetadata

log = logging.getLogger("sdenhance")


_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


@dataclass
class LoadedImage:
    """An image as the stages want it: 8-bit RGB, alpha aside, plus what happened on the way.

    `notes` are things worth telling the user (frame dropped, profile converted, bits reduced);
    `source_mode` is the mode of the file's pixels before conversion (e.g. "P", "I;16", "CMYK").
    `image.info` carries what outputs keep of the file: the ICC profile the pixels are in
    (`icc`), the EXIF block with its orientation reset (`exif`) and XMP (`xmp`). `deep` holds
    the exact pixels of a 16-bit or float file (`sdenhance.io.deep.DeepImage`), else None.
    """

    image: Image.Image
    alpha: Image.Image | None
    path: Path
    format: str
    metadata: ImageMetadata
    notes: list[str] = field(default_factory=list)
    source_mode: str = ""
    deep: Any = None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @property
    def icc(self) -> bytes | None:
        """The ICC profile the pixels are in (None: sRGB)."""
        return self.image.info.get("icc_profile")

    @property
    def exif(self) -> bytes | None:
        """The EXIF block outputs carry (orientation reset, layout tags dropped), or None."""
        return self.image.info.get("exif")

    @property
    def xmp(self) -> bytes | None:
        return self.image.info.get("xmp")


# notes that describe faithful conversions: logged at debug level, not shown in every batch
_ROUTINE_NOTES = (
    "applied EXIF orientation",
    "scaled to 8-bit",
    "with the embedded ICC profile",
    "pixels stay in its colour space",
    "CIELab",
)


def finish_loaded(
    rgb: Image.Image,
    alpha: Image.Image | None,
    path: Path,
    fmt: str,
    metadata: ImageMetadata,
    notes: list[str],
    source_mode: str,
    *,
    carried: dict[str, Any] | None = None,
    deep: Any = None,
) -> LoadedImage:
    """Replace the file's `info` with what outputs carry (`carried`: ICC profile, EXIF, XMP):
    a transparency key or comment left there would be written again by Pillow on save."""
    rgb.info = {k: v for k, v in (carried or {}).items() if v is not None}
    if alpha is not None:
        alpha.info = {}
    if deep is not None:
        deep.info = rgb.info
    for note in notes:
        routine = any(text in note for text in _ROUTINE_NOTES)
        log.log(logging.DEBUG if routine else logging.INFO, "%s: %s", path.name, note)
    return LoadedImage(rgb, alpha, path, fmt, metadata, notes, source_mode, deep)


def check_pixel_limit(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise SdenhanceError(f"cannot read {path}: invalid size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise SdenhanceError(
            f"{path}: {width}x{height} ({_pixel_count(width * height)}) is larger than the limit "
            "of "
            f"{_pixel_count(max_pixels)}; raise it with {MAX_PIXELS_ENV}=<pixels> if you trust the "
            "file"
        )


def _pixel_count(n: int) -> str:
    """'400.0 MP', or '3,072 pixels' where megapixels would round to 0.0 or 0.1."""
    return f"{n / 1e6:.1f} MP" if n >= 150_000 else f"{n:,} pixels"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not make the image unreadable
        log.debug("unreadable EXIF block ignored", exc_info=True)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(
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


DEFAULT_MAX_PIXELS = 100_000_000


MAX_PIXELS_ENV = "SDENHANCE_MAX_PIXELS"


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
