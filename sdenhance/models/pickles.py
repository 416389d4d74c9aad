"""Pickled checkpoints under --allow-pickle: loaded weights-only, converted once to safetensors."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sdenhance.errors import SdenhanceError
from sdenhance.models.checkpoint import check_safetensors, corrupt_error
from sdenhance.models.hashes import sha256_file

log = logging.getLogger("sdenhance")

if TYPE_CHECKING:
    import torch


def unpickle_weights_only(path: Path) -> object:
    """Unpickle `path` weights-only (tensors and plain containers): never executes code.

    A file that needs anything beyond that is refused with torch's reason, never retried with
    `weights_only=False`; a damaged file is one corrupt-checkpoint error.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        # a file object, not a path: torch >= 2.13 picks the loader by the path's extension
        with path.open("rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on legacy formats: not the user's
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message starts with how to load the file anyway (with terminal escapes);
        # the reason is on its `WeightsUnpickler error:` line
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
        found = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\.\s|\.?$)", text, re.M)
        reason = found.group(1) if found else text.splitlines()[0] if text else type(e).__name__
        if reason.startswith("Unsupported operand"):  # not a pickle torch wrote: damaged
            raise corrupt_error(path, f"not a valid pickle ({reason})") from None
        raise SdenhanceError(
            f"refusing to unpickle {path}: it holds more than plain weights ({reason})",
            hint="use a .safetensors version of this model",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError) as e:
        raise corrupt_error(path, f"torch cannot read it ({type(e).__name__})") from None


def load_pickle_weights(path: Path, *, nested: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a pickle checkpoint, unpickled weights-only (`unpickle_weights_only`).

    A nested `state_dict` is unwrapped; non-tensor entries (`global_step`, ...) are dropped.
    With `nested`, tensors in nested dicts are kept as `outer.inner` keys (A1111 embeddings
    keep theirs under `string_to_param`).
    """
    import torch

    path = Path(path)
    obj = unpickle_weights_only(path)
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SdenhanceError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a dict of weights"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if nested:
        for key, value in obj.items():
            if isinstance(value, dict):
                for sub, tensor in value.items():
                    if isinstance(tensor, torch.Tensor):
                        tensors[f"{key}.{sub}"] = tensor
    if not tensors:
        raise SdenhanceError(f"checkpoint {path} holds no weights")
    return tensors


def convert_pickle_to_safetensors(path: Path, out_dir: Path) -> Path:
    """Weights-only load of a pickle, saved once as `.safetensors` in `out_dir` (keyed by sha256).

    Lets the engine load `--allow-pickle` checkpoints through the same single-file path; a second
    call with the same file returns the cached conversion without unpickling again.
    """
    path = Path(path)
    digest = sha256_file(path)
    out = Path(out_dir) / f"{path.stem}-{digest[:16]}.safetensors"
    if out.is_file():
        try:
            check_safetensors(out)
            return out
        except SdenhanceError:
            log.info("re-converting %s: cached %s is damaged", path, out)
    tensors = load_pickle_weights(path)
    # safetensors refuses tensors that share storage; give each its own
    seen: set[tuple[int, int]] = set()
    unshared: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        storage = (value.untyped_storage().data_ptr(), value.untyped_storage().nbytes())
        unshared[key] = value.clone() if storage in seen else value
        seen.add(storage)
    log.info("converted %s to %s", path, out)
    return write_safetensors(unshared, out)


def write_safetensors(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a checkpoint."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
