"""Opt-in approximations of a denoising run, each trading exactness for speed.

All off by default, and off means the exact computation (tests/test_fast_modes.py proves each
bit-identical when off). What each does and what it costs is measured in bench/fast_modes.py.

- `control_cond_only`: the ControlNet runs on the conditional rows only and the unconditional
  rows get zero residuals: the batching of diffusers' `guess_mode` with classifier-free guidance
  (and of A1111's "ControlNet is more important"); CFG then amplifies the control's effect.
- `cfg_end`: classifier-free guidance for the first `int(steps × cfg_end)` steps, then the
  conditional prediction alone (one row per tile instead of two), as diffusers' documented
  dynamic-CFG callback counts steps.
- `cache_interval`: the whole UNet every N steps, its shallow path between (`feature_cache`).
- `token_merging`: tomesd at that ratio for the call (`token_merging`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Speedups:
    control_cond_only: bool = False
    cfg_end: float = 1.0
    cache_interval: int = 1
    token_merging: float = 0.0

    @property
    def exact(self) -> bool:
        return self == Speedups()


def guided_steps(total: int, cfg_end: float) -> int:
    """How many of `total` steps keep classifier-free guidance: the first int(total × cfg_end)."""
    return total if cfg_end >= 1.0 else int(total * cfg_end)
