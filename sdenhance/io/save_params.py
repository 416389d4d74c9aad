"""What a saved file carries, and where each format keeps it.

PNG: the A1111 infotext and our JSON record as text chunks, EXIF in eXIf, XMP as iTXt.
JPEG, WebP and AVIF: everything in EXIF as A1111 writes it (infotext in UserComment, our JSON
in ImageDescription), XMP in its own segment. TIFF: our JSON and the infotext in
ImageDescription, EXIF as the TIFF's own tags with its Exif and GPS IFDs (a TIFF carrying those
is written uncompressed: libtiff, which compresses, cannot write them). Every format
embeds the ICC profile the pixels are in. `strip` writes none of it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from sdenhance.io.exif import IMAGE_DESCRIPTION, JPEG_MAX_EXIF, SOFTWARE
from sdenhance.io.exif_carry import output_exif, output_xmp, tiff_tags, without_maker_note
from sdenhance.io.infotext import format_infotext

log = logging.getLogger("sdenhance")

CARRIED_KEYS = ("icc_profile", "exif", "xmp")
RECORD_KEY = "sdenhance"  # where a result image keeps its run record in `Image.info`


@dataclass
class FileMetadata:
    """Everything an output file will carry, format-neutral."""

    size: tuple[int, int]
    software: str | None = None
    infotext: str | None = None
    record_json: str | None = None
    icc: bytes | None = None
    exif: bytes | None = None  # the carried block, not yet fitted to the output
    xmp: bytes | None = None
    srgb: bool = False  # pixels were converted to sRGB

    def exif_for(self, fmt: str) -> Image.Exif:
        """The EXIF to write for `fmt`; JPEG/WebP/AVIF get the record and infotext in it."""
        in_exif = fmt in ("JPEG", "WEBP", "AVIF")
        return output_exif(
            self.exif,
            size=self.size,
            software=self.software or "",
            description=_described(self.record_json) if in_exif and self.record_json else None,
            infotext=self.infotext if in_exif else None,
            drop_comment=self.infotext is not None,
            srgb=self.srgb,
        )

    def fitted_xmp(self) -> bytes | None:
        return output_xmp(self.xmp, self.size) if self.xmp else None


def file_metadata(
    info: Mapping[str, Any],
    record: Mapping[str, Any] | None,
    size: tuple[int, int],
    *,
    strip: bool = False,
    srgb: bool = False,
) -> FileMetadata:
    """The metadata of an output of `size` from its image's carried `info` and run `record`."""
    if strip:
        return FileMetadata(size)
    from sdenhance._version import __version__

    meta = FileMetadata(size, software=f"sdenhance {__version__}", srgb=srgb)
    if not srgb:
        meta.icc = _bytes(info.get("icc_profile"))
    meta.exif = _bytes(info.get("exif"))
    meta.xmp = _bytes(info.get("xmp"))
    if record is not None:
        full = {"version": __version__, **{k: v for k, v in record.items() if k != "version"}}
        meta.record_json = json.dumps(full, default=json_default, ensure_ascii=False)
        meta.infotext = format_infotext(full, size=size)
    return meta


def _bytes(value: Any) -> bytes | None:
    return value if isinstance(value, bytes) and value else None


def _described(record_json: str) -> str:
    # EXIF/TIFF ASCII is 7-bit: the record re-encoded with \u escapes keeps every character
    return json.dumps({"sdenhance": json.loads(record_json)}, ensure_ascii=True)


def pil_params(fmt: str, meta: FileMetadata) -> dict[str, Any]:
    """Pillow `save()` keyword arguments that write `meta` in `fmt`."""
    params: dict[str, Any] = {}
    if meta.icc:
        params["icc_profile"] = meta.icc
    xmp = meta.fitted_xmp()
    if meta.software is None:
        return params
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        if meta.infotext is not None:
            info.add_text("parameters", meta.infotext)
        if meta.record_json is not None:
            info.add_text("sdenhance", meta.record_json)
        info.add_text("Software", meta.software)
        if xmp:
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
        params["pnginfo"] = info
        if meta.exif:
            params["exif"] = meta.exif_for(fmt)
    elif fmt == "TIFF":
        tags = tiff_tags(meta.exif_for(fmt)) if meta.exif else {}
        tags[SOFTWARE] = meta.software
        if meta.record_json is not None:
            record = json.loads(meta.record_json)
            tags[IMAGE_DESCRIPTION] = json.dumps({"sdenhance": record, "parameters": meta.infotext})
        if xmp:
            tags[700] = xmp
        params["tiffinfo"] = tags
        if any(isinstance(v, dict) for v in tags.values()):
            # only Pillow's own TIFF writer writes an Exif/GPS IFD, and it does not compress
            params["compression"] = "raw"
    else:
        params["exif"] = _fitting_exif(fmt, meta)
        if xmp:
            params["xmp"] = xmp
    return params


def _fitting_exif(fmt: str, meta: FileMetadata) -> Image.Exif:
    """EXIF for JPEG/WebP/AVIF; in JPEG (one 64 KB segment) what does not fit is left out:
    first our JSON record, then the camera's MakerNote, then the infotext, then the camera data."""
    exif = meta.exif_for(fmt)
    if fmt != "JPEG" or _fits(exif):
        return exif
    dropped = ["run record"]
    meta = dataclasses.replace(meta, record_json=None)
    exif = meta.exif_for(fmt)
    if not _fits(exif) and without_maker_note(exif):
        dropped.append("camera MakerNote")
    if not _fits(exif):
        meta = dataclasses.replace(meta, infotext=None)
        exif = meta.exif_for(fmt)
        without_maker_note(exif)
        dropped.append("A1111 parameters")
    if not _fits(exif):
        exif = dataclasses.replace(meta, exif=None).exif_for(fmt)
        dropped.append("camera EXIF")
    log.warning("EXIF too long for JPEG; left out: %s", ", ".join(dropped))
    return exif


def _fits(exif: Image.Exif) -> bool:
    return len(exif.tobytes()) <= JPEG_MAX_EXIF


def json_default(value: Any) -> Any:
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
