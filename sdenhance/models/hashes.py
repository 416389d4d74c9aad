"""File hashes for the infotext (A1111's "Model hash") and the record, cached by size and mtime."""

from __future__ import annotations

import hashlib
from pathlib import Path

_HASHES: dict[tuple[str, int, int], str] = {}  # also "addnet:"-prefixed keys


def sha256_file(path: Path) -> str:
    """SHA-256 of the whole file, streamed; cached per (path, size, mtime) for this process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def short_hash(path: Path) -> str:
    """A1111's "Model hash": the first 10 hex digits of the file's SHA-256 (Civitai's AutoV2)."""
    return sha256_file(path)[:10]


def addnet_hash(path: Path) -> str:
    """A1111's LoRA hash (Civitai's AutoV3): SHA-256 of a safetensors file's tensor data, after
    its header, so editing the metadata keeps the hash; the whole file for other formats."""
    path = Path(path)
    stat = path.stat()
    key = ("addnet:" + str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            head = f.read(9)
            if len(head) == 9 and head[8:9] == b"{":
                f.seek(8 + int.from_bytes(head[:8], "little"))
            else:
                f.seek(0)
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]
