"""Checks of an upscale's options that need the model's family (resolved from its configs, no
weights loaded) but no input: run once before a batch, so what is wrong for every input is
refused once, and again by the stage itself."""

from __future__ import annotations

from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.models.config import EngineConfig, controlnet_disabled
from sdenhance.upscalers.registry import MODEL_SUFFIXES, REGISTRY


def preflight(opts: Any, ctx: Any) -> None:
    """Refuse options that are wrong for every input, once and before any work: an unknown
    pre-upscaler, an overlap not below the tile the model will use, a ControlNet of another
    family than the model.

    Resolving a model reads configs only; no weights load. An unknown pre-upscaler is named
    first (it is wrong even without diffusion).
    """
    from pathlib import Path

    from sdenhance.upscalers.registry import get_upscaler

    if not Path(opts.upscaler).expanduser().is_file():
        get_upscaler(opts.upscaler)  # raises, listing the known ones
    if opts.creativity == 0:
        return
    check_upscaler_name(opts.upscaler)  # a typo fails before any model is resolved
    engine = ctx.engine
    tile = opts.tile or engine.family_resolution
    if opts.overlap >= tile:
        raise SdenhanceError(
            f"`overlap` must be smaller than the tile ({tile} px"
            f"{'' if opts.tile else ', the model native size'}); got {opts.overlap}"
        )
    engine.controlnet_model  # noqa: B018  resolves and checks its family, loads nothing


def check_upscaler_name(name: str) -> None:
    """A registered upscaler or a model file path; anything else lists the known names."""
    if name in REGISTRY or name.lower().endswith(MODEL_SUFFIXES):
        return
    REGISTRY.get(name)  # raises UnsupportedUpscalerError naming the known upscalers


def refuse_resemblance(engine_config: EngineConfig | None) -> None:
    """`resemblance` given by the user with `--controlnet none`: it would do nothing; say so.

    (A preset's or recipe's resemblance is only a default and is left unused instead.)
    """
    if controlnet_disabled(engine_config or EngineConfig()):
        raise SdenhanceError(
            "`--resemblance` sets the tile ControlNet's strength, but `--controlnet none` "
            "turns it off",
            hint="drop --resemblance (lower --creativity keeps closer to the input), "
            "or pass a tile --controlnet",
        )
