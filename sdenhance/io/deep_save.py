"""16-bit PNG and TIFF writing for `DeepImage` results (Pillow has no 16-bit RGB mode).

PNG: OpenCV encodes the pixels; the metadata chunks (iCCP, eXIf, text, XMP) are then put
after IHDR, each with its CRC, which is all PNG asks of an added chunk. TIFF: tifffile writes
the pixels, the profile, our record and the camera's IFD0 text tags (its Exif sub-IFD has no
tifffile writer, so exposure data stays behind in 16-bit TIFF outputs).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO

import numpy as np

from sdenhance.io.deep import DeepImage
from sdenhance.io.exif import IMAGE_DESCRIPTION
from sdenhance.io.save_params import FileMetadata

# IFD0 text tags of camera EXIF that tifffile can write as they are
_TEXT_TAGS = (271, 272, 306, 315, 316, 33432)  # Make, Model, DateTime, Artist, Host, Copyright


def write_deep(f: BinaryIO, image: DeepImage, fmt: str, meta: FileMetadata) -> None:
    pixels, alpha = image.to_uint16()
    data = pixels if alpha is None else np.dstack([pixels, alpha])
    if fmt == "PNG":
        f.write(_png16(data, meta))
    else:
        _tiff16(f, data, meta)


def _png16(data: np.ndarray, meta: FileMetadata) -> bytes:
    import cv2

    order = [2, 1, 0, 3][: data.shape[2]]  # RGB(A) -> OpenCV's BGR(A)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(data[:, :, order]))
    if not ok:
        raise OSError("OpenCV could not encode the 16-bit PNG")
    png = encoded.tobytes()
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, its 13 bytes, CRC
    return png[:ihdr_end] + b"".join(_png_chunks(meta)) + png[ihdr_end:]


def _png_chunks(meta: FileMetadata) -> list[bytes]:
    chunks = []
    if meta.icc:
        chunks.append(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(meta.icc)))
    if meta.exif:
        exif = meta.exif_for("PNG").tobytes()
        chunks.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    texts = [
        ("parameters", meta.infotext),
        ("sdenhance", meta.record_json),
        ("Software", meta.software),
    ]
    xmp = meta.fitted_xmp()
    if xmp:
        texts.append(("XML:com.adobe.xmp", xmp.decode("utf-8", "replace")))
    for key, text in texts:
        if text is not None:
            body = key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
            chunks.append(_chunk(b"iTXt", body))
    return chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _tiff16(f: BinaryIO, data: np.ndarray, meta: FileMetadata) -> None:
    import json

    import tifffile

    extratags = []
    if meta.record_json is not None:
        record = json.loads(meta.record_json)
        text = json.dumps({"sdenhance": record, "parameters": meta.infotext})
        extratags.append((IMAGE_DESCRIPTION, "s", 0, text, True))
    if meta.exif:
        exif = meta.exif_for("TIFF")
        for tag in _TEXT_TAGS:
            value = exif.get(tag)
            if isinstance(value, str) and value.isascii():
                extratags.append((tag, "s", 0, value, True))
    xmp = meta.fitted_xmp()
    if xmp:
        extratags.append((700, "B", len(xmp), xmp, True))
    buffer = io.BytesIO()  # tifffile wants a named file or a buffer, not a bare descriptor
    tifffile.imwrite(
        buffer,
        data,
        photometric="rgb",
        extrasamples=(2,) if data.shape[2] == 4 else None,
        compression="zlib",
        iccprofile=meta.icc,
        metadata=None,
        software=meta.software or False,
        extratags=extratags,
    )
    f.write(buffer.getbuffer())
