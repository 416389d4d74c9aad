"""The img2img schedule, its starting noise and the sampler's step arguments, as diffusers has them.

Each function is the counterpart of one piece of diffusers' img2img pipelines (`get_timesteps`,
`prepare_latents`, `prepare_extra_step_kwargs`), so a loop built from them computes what the
pipelines compute; tests/test_parity.py holds them to it for every sampler offered.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def img2img_timesteps(scheduler: Any, steps: int, strength: float, device: Any = None) -> Any:
    """The tail of a `steps`-step schedule that img2img at `strength` runs.

    Sets the scheduler's timesteps (and its begin index, where it has one, so multistep
    samplers start their history there); `int(steps × strength)` steps remain, each
    `scheduler.order` timesteps long.
    """
    scheduler.set_timesteps(steps, device=device)
    kept = min(int(steps * strength), steps)
    start = max(steps - kept, 0) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]


def noised_latents(
    init: torch.Tensor, scheduler: Any, timesteps: Any, generator: Any, *, device: Any, dtype: Any
) -> torch.Tensor:
    """`init` on `device` in the model's `dtype`, noised to the first timestep.

    The noise is diffusers' own `randn_tensor` (drawn on the generator's device in `dtype`),
    drawn before any sampler step: the latents the pipelines start from, bit for bit.
    """
    from diffusers.utils.torch_utils import randn_tensor

    init = init.to(device, dtype)
    noise = randn_tensor(init.shape, generator=generator, device=init.device, dtype=dtype)
    return scheduler.add_noise(init, noise, timesteps[:1])


def step_kwargs(scheduler: Any, generator: Any, eta: float = 0.0) -> dict[str, Any]:
    """The extra arguments `scheduler.step` takes: `eta` (DDIM) and `generator` (ancestral and
    SDE samplers), each only where the signature has it; other samplers refuse them."""
    params = inspect.signature(scheduler.step).parameters
    extra: dict[str, Any] = {}
    if "eta" in params:
        extra["eta"] = eta
    if "generator" in params:
        extra["generator"] = generator
    return extra
