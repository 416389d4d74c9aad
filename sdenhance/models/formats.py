"""Weight-file formats recognised by content, not by suffix: pickles are refused unless allowed."""

from __future__ import annotations

import logging
from pathlib import Path

# weights files that may be Python pickles: refused unless --allow-pickle, then loaded weights-only
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


log = logging.getLogger("sdenhance")


def looks_like_pickle(head: bytes) -> bool:
    """torch's zip format, or a raw pickle: the PROTO opcode 0x80 and a protocol number 2-5.

    A safetensors file (8-byte length, then the JSON's `{`) can also start with 0x80 (a header
    length ending in 0x80), so it is ruled out first by its `{` at byte 8.
    """
    if head[8:9] == b"{":
        return False
    return head.startswith(b"PK\x03\x04") or (
        head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"
    )


def is_pickle(path: Path) -> bool:
    """True for torch `.ckpt/.pt/.pth` pickles (zip or legacy), by content, not by extension."""
    with Path(path).open("rb") as f:
        return looks_like_pickle(f.read(9))
