"""Output formats and their encoder settings, and the optional HEIC/HEIF reader.

One table says which suffixes can be written, which format each means, which keep 16 bits
and which take a `quality`; AVIF is written by Pillow itself where its build has libavif
(`PIL.features.check("avif")`), HEIC/HEIF is read through the `pillow-heif` plugin, an extra
(`sdenhance[heic]`): its wheels bundle the GPL x265 encoder, which a core dependency should not
force on every user, and only reading is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError

# `--format` name -> (Pillow format, suffix written)
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", ".png"),
    "jpg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
    "avif": ("AVIF", ".avif"),
    "tif": ("TIFF", ".tif"),
}

SAVE_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".avif": "AVIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}

# image suffixes that name a picture we cannot write (an output named so is a mistake, not a folder)
UNWRITABLE_SUFFIXES = {".gif", ".bmp", ".heic", ".heif", ".jxl", ".jp2", ".ico", ".psd", ".dng"}

LOSSY = {"JPEG", "WEBP", "AVIF"}
DEEP = {"PNG", "TIFF"}  # formats written at 16 bits per channel when the pixels have them

# encoder quality when none is given: visually lossless for photos
DEFAULT_QUALITY = {"JPEG": 95, "WEBP": 95, "AVIF": 90}


@dataclass(frozen=True)
class SaveOptions:
    """How outputs are written: format (None: by the output's suffix), lossy quality (None:
    the format's default), `strip_metadata` (no profile, EXIF, XMP or run record) and `to_srgb`
    (pixels converted from the input's colour profile to sRGB)."""

    format: str | None = None
    quality: int | None = None
    strip_metadata: bool = False
    to_srgb: bool = False

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise SdenhanceError(
                f"`format` must be one of {', '.join(FORMATS)}; got {self.format!r}"
            )
        check_quality(self.quality)
        if self.format == "avif":
            require_avif()

    @property
    def suffix(self) -> str:
        """The suffix outputs get when their name does not say: `.png` unless `format` says."""
        return FORMATS[self.format][1] if self.format else ".png"

    def settings(self) -> dict[str, Any]:
        """What changes the written file, for the settings fingerprint."""
        return {
            "format": self.format,
            "quality": self.quality,
            "strip_metadata": self.strip_metadata,
            "to_srgb": self.to_srgb,
        }


def check_quality(quality: Any) -> None:
    if quality is None:
        return
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise SdenhanceError(f"`quality` must be a whole number from 1 to 100; got {quality!r}")


def format_of(path: Path) -> str:
    """The Pillow format an output path's suffix asks for; other suffixes are user errors."""
    fmt = SAVE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SdenhanceError(
            f"output {path}: unsupported suffix {path.suffix or '(none)'!r}; "
            "use .png, .jpg, .webp, .avif or .tif"
        )
    if fmt == "AVIF":
        require_avif()
    return fmt


def check_suffix_matches(path: Path, fmt: str | None) -> None:
    """`-o photo.png --format jpg` contradicts itself: refuse it rather than pick one."""
    if fmt is None:
        return
    if SAVE_SUFFIXES.get(path.suffix.lower()) != FORMATS[fmt][0]:
        raise SdenhanceError(
            f"output {path} ends in {path.suffix or '(no suffix)'} but `--format {fmt}` asks "
            f"for {FORMATS[fmt][1]}; change one of them"
        )


@cache
def avif_supported() -> bool:
    from PIL import features

    return bool(features.check("avif"))


def require_avif() -> None:
    if not avif_supported():
        raise SdenhanceError(
            "this Pillow was built without AVIF support",
            hint="pip install --upgrade pillow (recent wheels include libavif)",
        )


def encoder_params(fmt: str, quality: int | None) -> dict[str, Any]:
    """Pillow encoder options of `fmt` for `quality` (None: the format's default)."""
    q = quality if quality is not None else DEFAULT_QUALITY.get(fmt)
    if fmt == "JPEG":
        return {"quality": q, "subsampling": 0 if q >= 90 else 2}
    if fmt == "WEBP":
        return {"quality": q, "lossless": q == 100, "exact": True}
    if fmt == "AVIF":
        # speed 8 of libavif's 0-10: 4x faster than its default 6 for ~8 % more bytes
        # (bench/files.py), the better trade for batches
        return {"quality": q, "subsampling": "4:4:4" if q >= 90 else "4:2:0", "speed": 8}
    if fmt == "TIFF":
        return {"compression": "tiff_adobe_deflate"}
    return {}


@cache
def heif_registered() -> bool:
    """Register pillow-heif's HEIC/HEIF opener once; False when the extra is not installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}


def heif_brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO-BMFF `ftyp` box at the start of `head`."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return set()
    size = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12]}
    brands.update(head[i : i + 4] for i in range(16, size - 3, 4))
    return brands


def check_heif(path: Path) -> None:
    """Make HEIC/HEIF files readable (pillow-heif's plugin) or refuse them naming the extra."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return  # the opener reports it
    brands = heif_brands(head)
    if not brands & _HEIF_BRANDS or b"avif" in brands:
        return
    if not heif_registered():
        raise SdenhanceError(
            f"{path} is a HEIC/HEIF image; reading it needs pillow-heif",
            hint="pip install 'sdenhance[heic]'",
        )
