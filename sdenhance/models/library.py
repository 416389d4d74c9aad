"""The user's LoRA and embedding folders: find a file by name, read its tensors safely.

Names are looked up as A1111 does: a file's stem, case-insensitively, in (first found wins)
`SDENHANCE_LORA_DIR` / `SDENHANCE_EMBEDDING_DIR` (os.pathsep-separated), the config file's
`lora_dirs` / `embedding_dirs`, then `loras/` / `embeddings/` in the user folder. Subfolders
are searched; a scan stops after `MAX_FILES` files so a huge or looping tree cannot stall a run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdenhance.errors import SdenhanceError
from sdenhance.models.config import user_defaults, user_dir
from sdenhance.models.formats import PICKLE_SUFFIXES, is_pickle

if TYPE_CHECKING:
    import torch

KINDS = {
    "loras": ("SDENHANCE_LORA_DIR", "lora_dirs"),
    "embeddings": ("SDENHANCE_EMBEDDING_DIR", "embedding_dirs"),
}
SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
MAX_FILES = 20_000
MAX_DEPTH = 4


def search_dirs(kind: str) -> list[Path]:
    """The folders searched for `kind` (`loras` or `embeddings`), in order."""
    env, key = KINDS[kind]
    dirs = [Path(p).expanduser() for p in os.environ.get(env, "").split(os.pathsep) if p]
    configured = user_defaults().get(key) or []
    if isinstance(configured, str):
        configured = [configured]
    if not isinstance(configured, list) or not all(isinstance(p, str) for p in configured):
        raise SdenhanceError(f"config file: `{key}` must be a list of folders")
    dirs += [Path(p).expanduser() for p in configured]
    dirs.append(user_dir() / kind)
    return dirs


def catalogue(kind: str) -> dict[str, Path]:
    """Lower-cased stem -> file for every weights file in the `kind` folders (first wins)."""
    found: dict[str, Path] = {}
    seen = 0
    for root in search_dirs(kind):
        if not root.is_dir():
            continue
        base_depth = len(root.parts)
        for folder, subdirs, files in os.walk(root, followlinks=False):
            if len(Path(folder).parts) - base_depth >= MAX_DEPTH:
                subdirs.clear()
            subdirs.sort()
            for name in sorted(files):
                seen += 1
                if seen > MAX_FILES:
                    return found
                path = Path(folder) / name
                if path.suffix.lower() in SUFFIXES:
                    found.setdefault(path.stem.lower(), path)
    return found


def find(kind: str, spec: str) -> Path | None:
    """The file `spec` names: an existing path, else a stem (or file name) in the folders."""
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        return path
    stem = path.name
    if Path(stem).suffix.lower() in SUFFIXES:
        stem = Path(stem).stem
    if stem != spec.strip() and (os.sep in spec or "/" in spec):
        return None  # a path that does not exist is not a name
    return catalogue(kind).get(stem.lower())


def read_tensors(path: Path, *, allow_pickle: bool, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors` file (header checked first), or of a pickle loaded
    weights-only when `allow_pickle`; nested dicts of a pickle are flattened to `a.b` keys."""
    from sdenhance.models.checkpoint import check_safetensors

    if is_pickle(path):
        if not allow_pickle:
            raise SdenhanceError(
                f"{what} {path} is a pickle, which can run code when loaded; refused",
                hint="use its .safetensors version, or pass --allow-pickle to load it weights-only",
            )
        from sdenhance.models.pickles import load_pickle_weights

        return load_pickle_weights(path, nested=True)
    check_safetensors(path)
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise SdenhanceError(f"cannot read {what} {path}: {exc}") from None


def safetensors_metadata(path: Path) -> dict[str, Any]:
    """The `__metadata__` table of a safetensors header ({} for pickles or none)."""
    from sdenhance.models.checkpoint import check_safetensors

    if is_pickle(path):
        return {}
    meta = check_safetensors(path).get("__metadata__")
    return meta if isinstance(meta, dict) else {}
