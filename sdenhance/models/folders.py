"""Diffusers folders checked before diffusers reads them: configs, component files, weights.

A truncated `model_index.json`, a `config.json` that is a folder, or a half-downloaded
`diffusion_pytorch_model.safetensors` otherwise surface as a JSON traceback or as a loader
message that names neither the file nor the problem. Everything here reads configs and
safetensors headers only (milliseconds), and each problem is one line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.io.paths import require_file
from sdenhance.io.safe_text import UnsafeJSON, load_json

MAX_CONFIG_BYTES = 4 * 1024 * 1024  # configs are a few KB; tokenizer files are not read here

# model_index.json entries that are not components (their values are not [library, class])
_NOT_COMPONENTS = ("_class_name", "_diffusers_version", "_name_or_path")


def read_config(path: Path) -> dict[str, Any]:
    """A JSON config file as a dict, or one user error naming the file and what is wrong."""
    info = require_file(path, "config", "a JSON file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise SdenhanceError(f"{path}: {info.st_size:,} bytes is too large for a model config")
    try:
        data = load_json(path.read_bytes().decode("utf-8"), max_chars=MAX_CONFIG_BYTES)
    except OSError as exc:
        raise SdenhanceError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SdenhanceError(f"{path} is not a text file; a JSON config is expected") from None
    except UnsafeJSON as exc:
        raise SdenhanceError(
            f"{path} is {exc}", hint="the model folder is damaged: download it again"
        ) from None
    if not isinstance(data, dict):
        raise SdenhanceError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def text_field(data: dict[str, Any], key: str, path: Path) -> str:
    """`data[key]` when it is text (or absent: ""); a config of the wrong shape is an error."""
    value = data.get(key, "")
    if not isinstance(value, str):
        raise SdenhanceError(f"{path}: `{key}` should be text; got {type(value).__name__}")
    return value


def components(index: dict[str, Any]) -> list[str]:
    """The component subfolders a `model_index.json` names (`unet`, `vae`, ...)."""
    return [
        name
        for name, value in index.items()
        if name not in _NOT_COMPONENTS
        and isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    ]


def check_folder(folder: Path) -> None:
    """Every config and safetensors header a diffusers load will read, checked first.

    A pipeline folder's components come from `model_index.json`; a ControlNet folder is one
    component. Missing files are left to the loader, which names them; files that are there
    but broken (wrong type, invalid JSON, truncated weights) are reported here.
    """
    from sdenhance.models.checkpoint import check_safetensors

    index = folder / "model_index.json"
    parts = [folder / name for name in components(read_config(index))] if index.exists() else []
    for part in parts or [folder]:
        if not part.is_dir():
            continue
        for config in sorted(part.glob("*config.json")):  # config.json, scheduler_config.json...
            read_config(config)
        for weights in sorted(part.glob("*.safetensors")):
            require_file(weights, "weights file", "a .safetensors file")
            check_safetensors(weights)
