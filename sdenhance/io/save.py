"""Atomic saving with metadata: A1111 infotext and our run record in PNG text, EXIF for JPEG/WebP."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.atomic import write_atomic
from sdenhance.io.convert import split_alpha
from sdenhance.io.depth import to_8bit
from sdenhance.io.exif import EXIF_IFD, IMAGE_DESCRIPTION, JPEG_MAX_EXIF, SOFTWARE, USER_COMMENT
from sdenhance.io.infotext import format_infotext
from sdenhance.io.paths import check_output, describe_os_error

log = logging.getLogger("sdenhance")

SAVE_SUFFIXES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


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
    if os.path.isdir(path):  # False (not an error) for a name too long to exist
        raise SdenhanceError(f"output {path} is a folder; give a file name")
    check_output(path)
    out = _prepare_for_save(image, alpha, fmt, path)
    params = _save_params(out, fmt, metadata, quality)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SdenhanceError(
            f"cannot create folder {path.parent}: {describe_os_error(exc)}"
        ) from None
    write_atomic(path, lambda f: out.save(f, format=fmt, **params))
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
        base, own = split_alpha(image, to_rgb=False)
        alpha = alpha if alpha is not None else own
    elif image.mode in ("RGB", "L"):
        base = image
    elif image.mode in ("P", "PA") or image.mode.startswith(("I", "F", "1")):
        base, own = split_alpha(to_8bit(image, []), to_rgb=False)
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
    from sdenhance._version import __version__

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
        params["tiffinfo"] = {IMAGE_DESCRIPTION: described, SOFTWARE: software}
    else:
        exif = _exif_with(infotext, record, software)
        if fmt == "JPEG" and len(exif.tobytes()) > JPEG_MAX_EXIF:
            log.warning("run record too long for JPEG EXIF; kept the A1111 parameters only")
            exif = _exif_with(infotext, None, software)
            if len(exif.tobytes()) > JPEG_MAX_EXIF:
                log.warning("A1111 parameters too long for JPEG EXIF; metadata not written")
                exif = _exif_with(None, None, software)
        params["exif"] = exif
    return params


def _exif_with(infotext: str | None, record: Mapping[str, Any] | None, software: str) -> Image.Exif:
    """EXIF as A1111 writes it: infotext in UserComment with the 'UNICODE' charset header and
    big-endian UTF-16; our JSON record (ASCII-escaped) in ImageDescription."""
    exif = Image.Exif()
    exif[SOFTWARE] = software
    if record is not None:
        exif[IMAGE_DESCRIPTION] = json.dumps({"sdenhance": record}, default=_json_default)
    if infotext is not None:
        exif.get_ifd(EXIF_IFD)[USER_COMMENT] = b"UNICODE\x00" + infotext.encode("utf-16-be")
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
