"""Atomic saving with metadata: the run record as A1111 infotext and JSON, plus what the input
carried (ICC profile, EXIF, XMP); where each format keeps them is `save_params`."""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.atomic import write_atomic
from sdenhance.io.convert import split_alpha
from sdenhance.io.deep import DeepImage
from sdenhance.io.depth import to_8bit
from sdenhance.io.formats import DEEP, SAVE_SUFFIXES, check_quality, encoder_params, format_of
from sdenhance.io.loaded import one_line
from sdenhance.io.paths import check_output, describe_os_error
from sdenhance.io.save_params import FileMetadata, file_metadata, pil_params

log = logging.getLogger("sdenhance")

__all__ = ["SAVE_SUFFIXES", "save_image"]


def save_image(
    image: Image.Image | DeepImage,
    path: str | os.PathLike[str],
    *,
    alpha: Image.Image | None = None,
    metadata: Mapping[str, Any] | None = None,
    protect: Iterable[str | os.PathLike[str]] = (),
    quality: int | None = None,
    strip_metadata: bool = False,
    to_srgb: bool = False,
) -> Path:
    """Write `image` atomically as PNG/JPEG/WebP/AVIF/TIFF (by suffix) with its run record.

    `image` is RGB, RGBA (alpha from it) or L; an explicit `alpha` ('L', same size) replaces
    it; a `DeepImage` is written at 16 bits to PNG and TIFF. The file appears complete or not
    at all (temp file, fsync, rename), so an interrupt never leaves a broken output. `path` may
    not be any file in `protect` (the inputs). `metadata` (the run record) is written as A1111
    infotext and as `sdenhance` JSON; the ICC profile, EXIF and XMP in `image.info` (what the
    loader carried from the input) are written too. `quality` (1-100, lossy formats; None: the
    format's default). `to_srgb` converts the pixels from their profile to sRGB;
    `strip_metadata` writes no profile, EXIF, XMP or record (pixels in another profile are
    converted to sRGB first, so colours stay right).
    """
    path = Path(path)
    fmt = format_of(path)
    check_quality(quality)
    for other in protect:
        if _same_file(path, Path(other)):
            raise SdenhanceError(
                f"refusing to overwrite the input {other}; choose another output path"
            )
    if os.path.isdir(path):  # False (not an error) for a name too long to exist
        raise SdenhanceError(f"output {path} is a folder; give a file name")
    check_output(path)
    image, converted = _output_colours(image, fmt, to_srgb or strip_metadata)
    if isinstance(image, DeepImage):
        meta = file_metadata(image.info, metadata, image.size, strip=strip_metadata, srgb=converted)
        write = _deep_writer(image, fmt, meta)
    else:
        info = dict(image.info)
        out = _prepare_for_save(image, alpha, fmt, path)
        meta = file_metadata(info, metadata, out.size, strip=strip_metadata, srgb=converted)
        write = _pil_writer(out, fmt, meta, quality, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SdenhanceError(
            f"cannot create folder {path.parent}: {describe_os_error(exc)}"
        ) from None
    write_atomic(path, write)
    return path


def _output_colours(
    image: Image.Image | DeepImage, fmt: str, srgb: bool
) -> tuple[Image.Image | DeepImage, bool]:
    """The image in the colours it is written in, and whether it was converted to sRGB.

    16-bit pixels go to 8 bits for formats without 16 bits, and for an sRGB conversion
    (ImageCms converts 8-bit pixels only)."""
    from sdenhance.io.profiles import convert_to_srgb, is_srgb

    icc = image.info.get("icc_profile")
    convert = srgb and isinstance(icc, bytes) and not is_srgb(icc)
    if isinstance(image, DeepImage) and (fmt not in DEEP or convert):
        if fmt in DEEP:
            log.info("converted to sRGB at 8 bits per channel")
        image = image.to_image()
    if not convert:
        return image, False
    info = dict(image.info)
    try:
        out = convert_to_srgb(image, icc) if image.mode in ("RGB", "RGBA") else image
    except Exception as exc:  # an unusable profile: keep the pixels, say so
        log.warning("could not convert to sRGB (%s); pixels written as they are", one_line(exc))
        return image, False
    out.info = {k: v for k, v in info.items() if k != "icc_profile"}
    return out, True


def _pil_writer(
    out: Image.Image, fmt: str, meta: FileMetadata, quality: int | None, path: Path
) -> Callable[[Any], None]:
    params = {**encoder_params(fmt, quality), **pil_params(fmt, meta)}
    carried = meta.exif is not None or meta.xmp is not None

    def write(f: Any) -> None:
        try:
            out.save(f, format=fmt, **params)
        except (ValueError, TypeError, KeyError, struct.error) as exc:
            if not carried:
                raise
            # odd camera tags Pillow cannot write: the picture matters more than they do
            log.warning(
                "%s: the input's EXIF/XMP could not be written (%s); saved without them",
                path.name,
                one_line(exc),
            )
            f.seek(0)
            f.truncate()
            plain = dataclasses.replace(meta, exif=None, xmp=None)
            out.save(f, format=fmt, **{**encoder_params(fmt, quality), **pil_params(fmt, plain)})

    return write


def _deep_writer(image: DeepImage, fmt: str, meta: FileMetadata) -> Callable[[Any], None]:
    from sdenhance.io.deep_save import write_deep

    return lambda f: write_deep(f, image, fmt, meta)


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
                f"alpha is {alpha.size[0]}x{alpha.size[1]} but the image is "
                f"{base.size[0]}x{base.size[1]}"
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
