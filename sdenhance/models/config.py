"""Engine configuration and the model defaults: flag > SDENHANCE_* env > user config file > default."""

from __future__ import annotations

import os
import tomllib
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


def user_defaults() -> dict[str, Any]:
    """Defaults from the user config file (`model`, `controlnet`, `sdxl_model`...), if any."""
    path = user_config_path()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SdenhanceError(f"config file {path} is not valid TOML: {exc}") from None
    allowed = {"model", "controlnet", "inpaint_model", "model_config", "device", "dtype"}
    unknown = set(data) - allowed
    if unknown:
        raise SdenhanceError(
            f"config file {path}: unknown key `{sorted(unknown)[0]}`; allowed: {', '.join(sorted(allowed))}"
        )
    return data
