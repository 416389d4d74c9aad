"""Camera data carried from an input to its outputs: EXIF (orientation reset, sizes updated) and
XMP.

On load, the input's EXIF is copied without the tags that describe the file's own layout
(strip offsets, bit depth, compression, thumbnails, sub-IFD offsets) and with the orientation
reset to 1, because the loader has already turned the pixels upright. On save, the sizes are
set to the output's, our Software tag and run record are put in, and XMP gets the same
orientation and size fixes. Pillow's `Image.Exif` reads and writes the blocks; nothing here
parses TIFF structures by hand.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from PIL import Image

from sdenhance.io.exif import (
    EXIF_IFD,
    IMAGE_DESCRIPTION,
    ORIENTATION,
    SOFTWARE,
    USER_COMMENT,
)

log = logging.getLogger("sdenhance")

GPS_IFD = 0x8825
COLOR_SPACE = 0xA001  # 1 = sRGB
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
MAKER_NOTE = 0x927C

MAX_CARRIED_EXIF = 256 * 1024  # larger blocks are not camera data worth carrying
MAX_CARRIED_XMP = 1 << 20

# IFD0 tags about the file's own layout, not the picture: never carried to another file
_LAYOUT_TAGS = {
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 292, 293,
    317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 513, 514, 530, 532, 34675, 700,
    33723, 34377, 37724, 0xA005,
}  # fmt: skip
_SUB_IFDS = (EXIF_IFD, GPS_IFD)


def carried_exif(im: Image.Image, notes: list[str]) -> bytes | None:
    """The input's EXIF block to carry to outputs (orientation 1, layout tags dropped), or None."""
    try:
        source = im.getexif()
        if not source and not any(source.get_ifd(tag) for tag in _SUB_IFDS):
            return None
        out = Image.Exif()
        for tag, value in source.items():
            if tag not in _LAYOUT_TAGS and tag not in _SUB_IFDS:
                out[tag] = value
        for tag in _SUB_IFDS:
            sub = {k: v for k, v in source.get_ifd(tag).items() if k not in _LAYOUT_TAGS}
            if sub:
                out.get_ifd(tag).update(sub)
        if ORIENTATION in source:
            out[ORIENTATION] = 1
        data = out.tobytes()
    except Exception as exc:  # hostile or exotic EXIF: the image still loads, without it
        log.debug("EXIF not carried", exc_info=True)
        notes.append(f"EXIF not kept: unreadable ({type(exc).__name__})")
        return None
    if len(data) > MAX_CARRIED_EXIF:
        notes.append(f"EXIF not kept: {len(data):,} bytes is more than camera data needs")
        return None
    return data


def carried_xmp(im: Image.Image, notes: list[str]) -> bytes | None:
    """The input's XMP packet with its orientation reset, or None."""
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if not isinstance(xmp, bytes) or not xmp.strip():
        return None
    if len(xmp) > MAX_CARRIED_XMP:
        notes.append(f"XMP not kept: {len(xmp):,} bytes")
        return None
    return _set_xmp_values(xmp, {"tiff:Orientation": 1})


def output_exif(
    carried: bytes | None,
    *,
    size: tuple[int, int],
    software: str,
    description: str | None = None,
    infotext: str | None = None,
    drop_comment: bool = False,
    srgb: bool = False,
) -> Image.Exif:
    """EXIF for an output: the carried block with the output's sizes, our Software tag, our
    record in ImageDescription and the A1111 infotext in UserComment as A1111 writes it
    ('UNICODE' header, big-endian UTF-16). `drop_comment` removes an input's UserComment (a
    stale prompt) where the infotext is kept elsewhere; `srgb` marks the pixels as sRGB."""
    exif = Image.Exif()
    if carried:
        try:
            exif.load(carried)
        except Exception:  # carried blocks were written by Pillow itself; be safe anyway
            log.debug("carried EXIF unreadable; written without it", exc_info=True)
            exif = Image.Exif()
    exif[SOFTWARE] = software
    if description is not None:
        exif[IMAGE_DESCRIPTION] = description
    sub = exif.get_ifd(EXIF_IFD)
    if infotext is not None:
        sub[USER_COMMENT] = b"UNICODE\x00" + infotext.encode("utf-16-be")
    elif drop_comment:
        sub.pop(USER_COMMENT, None)
    if PIXEL_X in sub or PIXEL_Y in sub:
        sub[PIXEL_X], sub[PIXEL_Y] = size
    if srgb and COLOR_SPACE in sub:
        sub[COLOR_SPACE] = 1
    return exif


def without_maker_note(exif: Image.Exif) -> bool:
    """Drop the (often large, opaque) MakerNote; True when there was one."""
    return exif.get_ifd(EXIF_IFD).pop(MAKER_NOTE, None) is not None


def tiff_tags(exif: Image.Exif) -> dict[int, Any]:
    """EXIF as Pillow's `tiffinfo`: IFD0 tags, with the Exif and GPS IFDs as nested dicts."""
    tags: dict[int, Any] = {t: v for t, v in exif.items() if t not in _SUB_IFDS}
    for tag in _SUB_IFDS:
        sub = dict(exif.get_ifd(tag))
        if sub:
            tags[tag] = sub
    return tags


def output_xmp(xmp: bytes, size: tuple[int, int]) -> bytes:
    """The carried XMP with its pixel dimensions set to the output's."""
    width, height = size
    return _set_xmp_values(
        xmp,
        {
            "exif:PixelXDimension": width,
            "exif:PixelYDimension": height,
            "tiff:ImageWidth": width,
            "tiff:ImageLength": height,
        },
    )


def _set_xmp_values(xmp: bytes, values: dict[str, int]) -> bytes:
    """Replace the value of each XMP property present, in attribute or element form."""
    for name, value in values.items():
        key = re.escape(name.encode())
        new = str(value).encode()
        xmp = re.sub(
            rb"(" + key + rb"\s*=\s*[\"'])[^\"'<>]{0,32}([\"'])", rb"\g<1>" + new + rb"\2", xmp
        )
        xmp = re.sub(
            rb"(<" + key + rb">)\s*[^<]{0,32}(</" + key + rb">)", rb"\g<1>" + new + rb"\2", xmp
        )
    return xmp


def describe_carried(info: dict[str, Any]) -> dict[str, Any]:
    """What an image carries for its outputs, in words: the profile's name, camera and date."""
    import io

    from PIL import ImageCms

    out: dict[str, Any] = {"icc_profile": None, "camera": None, "taken": None, "xmp": False}
    icc = info.get("icc_profile")
    if isinstance(icc, bytes):
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out["icc_profile"] = (ImageCms.getProfileDescription(profile) or "").strip() or "yes"
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            out["icc_profile"] = "unreadable"
    exif = Image.Exif()
    if isinstance(info.get("exif"), bytes):
        try:
            exif.load(info["exif"])
        except Exception:
            log.debug("carried EXIF unreadable", exc_info=True)
    make, model = (str(exif.get(t) or "").strip() for t in (0x010F, 0x0110))
    camera = model if model.lower().startswith(make.lower()) else f"{make} {model}".strip()
    out["camera"] = camera or None
    out["taken"] = exif.get_ifd(EXIF_IFD).get(0x9003) or exif.get(0x0132)
    out["xmp"] = bool(info.get("xmp"))
    return out
