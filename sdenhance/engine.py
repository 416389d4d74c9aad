"""Model resolution, loading and sharing; device, dtype and speed knobs.

(EngineConfig is the contract; the Engine implementation follows.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineConfig:
    """Which models to load and how. Shared by every command that runs a model."""

    model: str | None = None  # hub id, diffusers folder or single .safetensors; None = default
    controlnet: str | None = None  # tile ControlNet; None = the family's default
    inpaint_model: str | None = None  # dedicated 9-channel inpainting model, optional
    config: str | None = None  # diffusers folder or hub id with configs for single-file loads
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
    from .errors import SdenhanceError

    base = cfg.device.split(":", 1)[0]
    if base not in DEVICES or (":" in cfg.device and not cfg.device.split(":", 1)[1].isdigit()):
        raise SdenhanceError(f"`--device` must be auto, cpu, cuda, cuda:N or mps; got {cfg.device!r}")
    if cfg.dtype not in DTYPES:
        raise SdenhanceError(f"`--dtype` must be one of {', '.join(DTYPES)}; got {cfg.dtype!r}")
    if cfg.offload not in OFFLOADS:
        raise SdenhanceError(f"`--offload` must be one of {', '.join(OFFLOADS)}; got {cfg.offload!r}")
