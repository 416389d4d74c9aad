"""Engine configuration and model defaults: flag > SDENHANCE_* env > config file > default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError

DEFAULTS = {
    "sd15": {
        "model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "controlnet": "lllyasviel/control_v11f1e_sd15_tile",
        "resolution": 512,
    },
    "sdxl": {
        "model": "stabilityai/stable-diffusion-xl-base-1.0",
        "controlnet": "xinsir/controlnet-tile-sdxl-1.0",
        "resolution": 1024,
    },
}


def native_resolution(pipe: Any) -> int:
    """The side in px a pipeline's UNet was trained at (512 SD 1.5, 768 SD 2, 1024 SDXL).

    Read from the model itself, as diffusers does for its default size, so a dedicated
    inpainting model of another family or resolution than the base model is right. The tile of
    an upscale follows the family instead (`Engine.family_resolution`).
    """
    side = pipe.unet.config.sample_size
    side = max(side) if isinstance(side, (list, tuple)) else side
    return int(side) * int(pipe.vae_scale_factor)


@dataclass(frozen=True)
class EngineConfig:
    """Which models to load and how. Shared by every command that runs a model."""

    model: str | None = None  # hub id, diffusers folder or single .safetensors; None = default
    controlnet: str | None = None  # tile ControlNet; None = the family's default; "none" = off
    inpaint_model: str | None = None  # dedicated 9-channel inpainting model, optional
    model_config: str | None = None  # diffusers folder or hub id with configs for single-file loads
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | fp32 | fp16 | bf16
    offload: str = "none"  # none | model | sequential
    vae_tiling: bool = False
    attention_slicing: bool = False
    allow_pickle: bool = False
    vae: str | None = None  # VAE to use instead of the model's: folder, hub id or .safetensors


DEVICES = ("auto", "cpu", "cuda", "mps")


DTYPES = ("auto", "fp32", "fp16", "bf16")


OFFLOADS = ("none", "model", "sequential")


def check_config(cfg: EngineConfig) -> None:
    """Validate an engine configuration before anything loads."""
    from sdenhance.errors import SdenhanceError

    base = cfg.device.split(":", 1)[0]
    if base not in DEVICES or (":" in cfg.device and not cfg.device.split(":", 1)[1].isdigit()):
        raise SdenhanceError(
            f"`--device` must be auto, cpu, cuda, cuda:N or mps; got {cfg.device!r}"
        )
    if cfg.dtype not in DTYPES:
        raise SdenhanceError(f"`--dtype` must be one of {', '.join(DTYPES)}; got {cfg.dtype!r}")
    if cfg.offload not in OFFLOADS:
        raise SdenhanceError(
            f"`--offload` must be one of {', '.join(OFFLOADS)}; got {cfg.offload!r}"
        )
    if cfg.offload != "none" and base == "cpu":
        raise SdenhanceError(
            "`--offload` moves models off a GPU; it has no use with `--device cpu`"
        )


NO_CONTROLNET = "none"


def controlnet_disabled(cfg: EngineConfig) -> bool:
    """Whether `--controlnet none` (flag, SDENHANCE_CONTROLNET or the config file) turns the tile
    ControlNet off: upscaling is then plain tile img2img and no ControlNet is resolved."""
    spec = (
        cfg.controlnet
        or os.environ.get("SDENHANCE_CONTROLNET")
        or user_defaults().get("controlnet")
    )
    return isinstance(spec, str) and spec.strip().lower() == NO_CONTROLNET


def user_config_path() -> Path:  # model precedence: flag > SDENHANCE_* env > this file > default
    """`SDENHANCE_CONFIG`, else $XDG_CONFIG_HOME/sdenhance/config.toml."""
    env = os.environ.get("SDENHANCE_CONFIG")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "sdenhance" / "config.toml"


def user_dir() -> Path:
    """The user folder: `$SDENHANCE_HOME`, else `$XDG_CONFIG_HOME/sdenhance` (~/.config/sdenhance);
    it holds `prompts/`, `pipelines/`, `loras/` and `embeddings/`."""
    env = os.environ.get("SDENHANCE_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "sdenhance"


_CONFIG_KEYS = {
    "model": "a hub id, diffusers folder or .safetensors file",
    "controlnet": "a hub id, folder or .safetensors file",
    "inpaint_model": "a hub id, folder or .safetensors file",
    "model_config": "a diffusers folder or hub id",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "dtype": ", ".join(DTYPES),
    "vae": "a VAE folder, hub id or .safetensors file",
}
_CONFIG_LISTS = {"lora_dirs": "LoRA folders", "embedding_dirs": "embedding folders"}


def user_defaults() -> dict[str, Any]:
    """Defaults from the user config file (`model`, `controlnet`, `device`...), if any.

    Every value is checked here, so a wrong type or an unknown key is one line naming the key
    and the file, before anything loads.
    """
    from sdenhance.io.paths import require_file
    from sdenhance.io.safe_text import MAX_TOML_BYTES, load_toml, short

    path = user_config_path()
    if not os.path.exists(path):
        return {}
    if require_file(path, "config file", "a TOML file").st_size > MAX_TOML_BYTES:
        raise SdenhanceError(f"config file {path} is too large for a TOML file")
    try:
        data = load_toml(path.read_bytes())
    except OSError as exc:
        raise SdenhanceError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SdenhanceError(f"config file {path}: {exc}") from None
    for key, value in data.items():
        if key in _CONFIG_LISTS:  # a folder or a list of folders
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(
                isinstance(v, str) and v.strip() and len(v) <= 4096 for v in items
            ):
                raise SdenhanceError(
                    f"config file {path}: `{key}` must be a list of {_CONFIG_LISTS[key]}; "
                    f"got {short(repr(value), 60)}"
                )
            continue
        if key not in _CONFIG_KEYS:
            allowed = sorted([*_CONFIG_KEYS, *_CONFIG_LISTS])
            raise SdenhanceError(
                f"config file {path}: unknown key `{key}`; allowed: {', '.join(allowed)}"
            )
        if not isinstance(value, str) or not value.strip() or len(value) > 4096:
            raise SdenhanceError(
                f"config file {path}: `{key}` must be text ({_CONFIG_KEYS[key]}); "
                f"got {short(repr(value), 60)}"
            )
    if "device" in data or "dtype" in data:
        try:
            check_config(
                EngineConfig(device=data.get("device", "auto"), dtype=data.get("dtype", "auto"))
            )
        except SdenhanceError as exc:
            raise SdenhanceError(f"config file {path}: {str(exc).replace('`--', '`')}") from None
    return data
