"""An input's identity in a run record: its name and the start of its SHA-256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def input_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Name and SHA-256 (first 16 hex digits) of an input, for the output's run record."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"name": Path(path).name, "sha256": digest.hexdigest()[:16]}
