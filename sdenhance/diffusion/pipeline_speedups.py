"""The speed-ups of `speedups.Speedups` on a diffusers img2img pipeline call (SD 1.5, SDXL).

- `cfg_end`: the pipeline's step-end callback turns guidance off after the guided steps and
  keeps the conditional half of the batched embeddings, as diffusers documents for dynamic
  classifier-free guidance.
- `cache_interval`: the UNet's `forward` is swapped, for the call only, for one that takes
  the shallow path of `feature_cache` between full steps (one pipeline step, one UNet call).
- `token_merging`: `token_merging.merged_tokens` on the pipeline's UNet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sdenhance.diffusion.feature_cache import FeatureCache
from sdenhance.diffusion.speedups import Speedups, guided_steps
from sdenhance.diffusion.token_merging import merged_tokens
from sdenhance.errors import SdenhanceError

StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]

# batched [uncond, cond] tensors a pipeline hands its step-end callback and takes back
_HALVED = ("prompt_embeds", "add_text_embeds", "add_time_ids")


def model_calls(pipe: Any, steps: int) -> int:
    """UNet calls of a pipeline run of `steps` denoising steps (two per step for Heun)."""
    return steps * getattr(pipe.scheduler, "order", 1)


def guidance_for(pipe: Any, speedups: Speedups, guidance: float, steps: int) -> float:
    """The guidance scale to call the pipeline with: none at all when no step keeps it."""
    none = guided_steps(model_calls(pipe, steps), speedups.cfg_end) == 0
    return 1.0 if guidance > 1.0 and none else guidance


def cfg_end_callback(
    pipe: Any, speedups: Speedups, steps: int, inner: StepCallback
) -> tuple[StepCallback, list[str]]:
    """(callback, tensor inputs) for `pipe(...)`: `inner` each step, and guidance ended after
    the guided steps."""
    total = model_calls(pipe, steps)
    guided = guided_steps(total, speedups.cfg_end)
    if guided in (0, total):
        return inner, ["latents"]
    names = [n for n in _HALVED if n in getattr(pipe, "_callback_tensor_inputs", ())]
    if "prompt_embeds" not in names:
        raise SdenhanceError(f"`cfg_end` is not supported with {type(pipe).__name__}")

    def callback(pipe_: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = inner(pipe_, i, t, kwargs)
        if i + 1 == guided and pipe_.do_classifier_free_guidance:
            pipe_._guidance_scale = 1.0
            for name in names:
                kwargs[name] = kwargs[name].chunk(2)[-1]
        return kwargs

    return callback, ["latents", *names]


@contextlib.contextmanager
def cached_forward(unet: Any, interval: int) -> Iterator[FeatureCache | None]:
    """`unet.forward` taking the shallow path between full steps, for the `with` block."""
    if interval <= 1:
        yield None
        return
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

    own = vars(unet).get("forward")  # an instance attribute (a timer's wrapper) comes back
    original = unet.forward
    cache = FeatureCache(unet, interval, call=original)
    calls = [0]

    def forward(sample: Any, timestep: Any, encoder_hidden_states: Any, **kwargs: Any) -> Any:
        cache.start_step(calls[0])
        calls[0] += 1
        if not cache.shallow(None, sample.shape[0]):
            return cache.full(None, sample, timestep, encoder_hidden_states, **kwargs)
        eps = cache.run_shallow(
            None,
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            added_cond_kwargs=kwargs.get("added_cond_kwargs"),
            cross_attention_kwargs=kwargs.get("cross_attention_kwargs"),
        )
        return UNet2DConditionOutput(sample=eps) if kwargs.get("return_dict", True) else (eps,)

    unet.forward = forward
    try:
        yield cache
    finally:
        if own is not None:
            unet.forward = own
        else:
            del unet.forward


@contextlib.contextmanager
def pipeline_speedups(
    pipe: Any, speedups: Speedups, steps: int, seed: int, inner: StepCallback
) -> Iterator[tuple[StepCallback, list[str]]]:
    """Token merging and the feature cache on `pipe.unet` for the `with` block; yields the
    step-end callback and its tensor inputs for `pipe(...)` (`steps`: denoising steps run)."""
    with (
        merged_tokens(pipe.unet, speedups.token_merging, seed),
        cached_forward(pipe.unet, speedups.cache_interval),
    ):
        yield cfg_end_callback(pipe, speedups, steps, inner)
