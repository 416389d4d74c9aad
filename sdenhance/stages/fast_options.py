"""Option fields of the opt-in speed-ups (`sdenhance.diffusion.speedups`) and the `fast` preset.

Declared once here, as a base of the generative stages' `Options` (upscale, img2img), so help
and checks read the same everywhere. Every default is the exact computation. `fast` is a
preset: `build_options` fills in `FAST` for the speed-up fields a caller did not give, so a
given flag wins and the record keeps the values that ran (a re-run gives them all and is not
re-expanded). Which modes `FAST` combines, and why, is measured in bench/fast_modes.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdenhance.diffusion.speedups import Speedups
from sdenhance.options import option
from sdenhance.stages.networks import NetworkOptions

# what `fast` turns on: the modes that paid in bench/RESULTS.md ("Fast modes")
FAST: dict[str, Any] = {"cache_interval": 2, "cfg_end": 0.8}

APPROX = "Approximate (the result changes; see docs/speed.md)"


@dataclass(frozen=True)
class FastOptions(NetworkOptions):
    """Base of a generative stage's `Options`: the speed-ups every such stage offers."""

    fast: bool = option(
        False,
        "Preset of the speed-ups that paid in our measurements: "
        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in FAST.items())
        + ". A flag given with it wins; the record keeps the values used. "
        + APPROX,
    )
    cfg_end: float = option(
        1.0,
        "Classifier-free guidance only for this fraction of the steps, then the prompt's "
        "prediction alone (one model row instead of two). 1 = every step (exact). " + APPROX,
        ge=0.0,
        le=1.0,
    )
    token_merging: float = option(
        0.0,
        "Token merging ratio (ToMe for SD, needs sdenhance[fast]): the share of tokens merged "
        "before self-attention in the full-resolution blocks. 0 = off (exact). " + APPROX,
        ge=0.0,
        le=0.75,
    )
    cache_interval: int = option(
        1,
        "UNet feature caching (DeepCache's idea): the whole UNet every N steps, its shallow "
        "blocks on the steps between. 1 = off (exact). " + APPROX,
        ge=1,
        le=10,
    )

    def check(self) -> None:
        super().check()
        if self.token_merging > 0:
            from sdenhance.diffusion.token_merging import require_tomesd

            require_tomesd()  # before any model loads

    def speedups(self) -> Speedups:
        return Speedups(
            control_cond_only=getattr(self, "control_cond_only", False),
            cfg_end=self.cfg_end,
            cache_interval=self.cache_interval,
            token_merging=self.token_merging,
        )


@dataclass(frozen=True)
class ControlFastOptions(FastOptions):
    """`FastOptions` plus the one of stages that run a ControlNet themselves (upscale)."""

    control_cond_only: bool = option(
        False,
        "Run the ControlNet for the prompt's half of classifier-free guidance only, with no "
        "control in the negative half (as diffusers' guess mode and A1111's \"ControlNet is "
        "more important\" batch it): the control's effect grows with the guidance. " + APPROX,
    )


def with_fast(cls: type, values: Mapping[str, Any]) -> Mapping[str, Any]:
    """`values` with the `fast` preset's values under the given ones, when `fast` is on."""
    if values.get("fast") is not True:
        return values
    names = {f.name for f in dataclasses.fields(cls)}
    return {**{k: v for k, v in FAST.items() if k in names}, **values}
