"""The model, device and speed options every generative command shares, declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from sdenhance.cli.panels import P_MODEL, P_PERF
from sdenhance.models.config import EngineConfig

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="SDENHANCE_MODEL",
        help="Base model: hub id, diffusers folder or single .safetensors file (SD 1.5 or SDXL).",
        rich_help_panel=P_MODEL,
    ),
]


ControlNet = Annotated[
    str | None,
    typer.Option(
        "--controlnet",
        envvar="SDENHANCE_CONTROLNET",
        help="Tile ControlNet: hub id, folder or .safetensors. Default: the family's tile model; "
        "`none`: upscale with the model alone (tile img2img).",
        rich_help_panel=P_MODEL,
    ),
]


InpaintModel = Annotated[
    str | None,
    typer.Option(
        "--inpaint-model",
        envvar="SDENHANCE_INPAINT_MODEL",
        help="Dedicated inpainting model (9-channel UNet); default: inpaint with the base model.",
        rich_help_panel=P_MODEL,
    ),
]


ModelConfig = Annotated[
    str | None,
    typer.Option(
        "--model-config",
        help="Diffusers folder or hub id holding configs for single-file checkpoints (offline "
        "use).",
        rich_help_panel=P_MODEL,
    ),
]


AllowPickle = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="Allow .ckpt/.pt/.pth/.bin pickles (loaded weights-only). Off: pickles are refused.",
        rich_help_panel=P_MODEL,
    ),
]


Device = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.",
        rich_help_panel=P_PERF,
    ),
]


Dtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="auto (fp16 on CUDA and MPS; on CPUs bf16 where they compute it natively, AVX512-BF16 "
        "or AMX, else fp32), fp32, fp16 or bf16.",
        rich_help_panel=P_PERF,
    ),
]


Offload = Annotated[
    str,
    typer.Option(
        "--offload",
        help="Move idle models off the GPU: none, model or sequential (slowest, least memory).",
        rich_help_panel=P_PERF,
    ),
]


Vae = Annotated[
    str | None,
    typer.Option(
        "--vae",
        envvar="SDENHANCE_VAE",
        help="VAE to use instead of the model's: diffusers folder, hub id (e.g. "
        "madebyollin/sdxl-vae-fp16-fix) or .safetensors; must be of the model's family.",
        rich_help_panel=P_MODEL,
    ),
]


VaeTiling = Annotated[
    bool,
    typer.Option(
        "--vae-tiling",
        help="Decode/encode the VAE in tiles (less memory for huge single-pass images).",
        rich_help_panel=P_PERF,
    ),
]


AttentionSlicing = Annotated[
    bool,
    typer.Option(
        "--attention-slicing",
        help="Compute attention in slices (less memory, slower).",
        rich_help_panel=P_PERF,
    ),
]


def engine_config(
    model: str | None = None,
    controlnet: str | None = None,
    inpaint_model: str | None = None,
    model_config: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    offload: str = "none",
    vae_tiling: bool = False,
    attention_slicing: bool = False,
    allow_pickle: bool = False,
    vae: str | None = None,
) -> EngineConfig:
    from sdenhance.models.config import check_config, user_defaults

    user_defaults()  # a broken config file is reported before any work, not at the first load
    cfg = EngineConfig(
        model=model,
        controlnet=controlnet,
        inpaint_model=inpaint_model,
        model_config=model_config,
        device=device,
        dtype=dtype,
        offload=offload,
        vae_tiling=vae_tiling,
        attention_slicing=attention_slicing,
        allow_pickle=allow_pickle,
        vae=vae,
    )
    check_config(cfg)
    return cfg


def rank_device(engine: EngineConfig | None) -> EngineConfig | None:
    """One GPU per process under a multi-process launch: `auto`/`cuda` -> `cuda:LOCAL_RANK`."""
    import dataclasses
    import os

    if engine is None or engine.device not in ("auto", "cuda"):
        return engine
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 1:
        return engine
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return dataclasses.replace(engine, device=f"cuda:{local % count}")


_ENGINE_OPTIONS: dict[str, tuple[Any, Any]] = {
    "model": (Model, None),
    "controlnet": (ControlNet, None),
    "inpaint_model": (InpaintModel, None),
    "model_config": (ModelConfig, None),
    "vae": (Vae, None),
    "allow_pickle": (AllowPickle, False),
    "device": (Device, "auto"),
    "dtype": (Dtype, "auto"),
    "offload": (Offload, "none"),
    "vae_tiling": (VaeTiling, False),
    "attention_slicing": (AttentionSlicing, False),
}


_MODEL_ROLES = ("model", "controlnet", "inpaint_model")


def engine_options(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared model, device and speed options, declared once here.

    `roles` picks the models it offers (model, controlnet, inpaint_model); the command takes a
    parameter `engine` and receives a checked `EngineConfig` there.
    """
    import functools
    import inspect

    names = [n for n in _ENGINE_OPTIONS if n not in _MODEL_ROLES or n in roles]

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "engine"]
        extra = [
            inspect.Parameter(
                n,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_ENGINE_OPTIONS[n][0],
                default=_ENGINE_OPTIONS[n][1],
            )
            for n in names
        ]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in names}
            return fn(*args, engine=engine_config(**values), **kwargs)

        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            if p.kind == p.POSITIONAL_OR_KEYWORD
            else p
            for p in own
        ]
        command.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        return command

    return wrap
