"""The mask an inpaint/remove output was made with, kept in its run record for re-runs.

The record holds the mask's name and a digest of its pixels (mode, size and values, so the
same mask saved as another file format still matches), and the mask itself as base64 PNG
when that is small (`MAX_EMBED` bytes): a re-run (`run --from OUT`) then needs no mask file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from typing import Any

from PIL import Image

from sdenhance.errors import SdenhanceError

MAX_EMBED = 64 * 1024  # compressed PNG bytes of a mask kept in the record
MAX_SIDE = 1 << 15  # a stored mask larger than this is refused (a record is untrusted input)


def mask_digest(mask: Image.Image) -> str:
    """First 16 hex digits of SHA-256 over the mask's mode, size and pixel bytes."""
    digest = hashlib.sha256(f"{mask.mode} {mask.width}x{mask.height}\n".encode())
    digest.update(mask.tobytes())
    return digest.hexdigest()[:16]


def mask_record(mask: Image.Image, name: str) -> dict[str, Any]:
    """{name, sha256, png?}: png (base64) only when the mask compresses to `MAX_EMBED` or less."""
    record: dict[str, Any] = {"name": name, "sha256": mask_digest(mask)}
    buffer = io.BytesIO()
    try:
        mask.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError):  # a mode PNG cannot hold ('F'): name and digest only
        return record
    with Image.open(buffer) as back:  # modes PNG widens ('I') would not match their digest
        same = mask_digest(back) == record["sha256"]
    if same and buffer.tell() <= MAX_EMBED:
        record["png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    return record


def stored_mask(record: Any) -> Image.Image | None:
    """The mask embedded in a record's `mask` entry (None if there is none), digest checked."""
    if not isinstance(record, dict) or not isinstance(record.get("png"), str):
        return None
    text = record["png"]
    if len(text) > MAX_EMBED * 4 // 3 + 4:
        raise SdenhanceError("the stored mask is larger than sdenhance writes; give --mask")
    try:
        with Image.open(io.BytesIO(base64.b64decode(text, validate=True))) as im:
            if im.format != "PNG" or max(im.size) > MAX_SIDE:
                raise SdenhanceError("the stored mask is not a mask sdenhance wrote; give --mask")
            im.load()
            mask = im.copy()
    except (OSError, ValueError, binascii.Error, Image.DecompressionBombError):
        raise SdenhanceError("the stored mask cannot be read; give --mask") from None
    if mask_digest(mask) != record.get("sha256"):
        raise SdenhanceError("the stored mask does not match its recorded hash; give --mask")
    return mask
