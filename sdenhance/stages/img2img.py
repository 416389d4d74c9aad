"""img2img refine: re-noise the image to `strength` and denoise it with the prompt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from sdenhance.diffusion.conditioning import conditioned
from sdenhance.diffusion.pipeline_speedups import guidance_for, pipeline_speedups
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops.sizes import effective_steps
from sdenhance.options import option
from sdenhance.stages import Context
from sdenhance.stages.fast_options import FastOptions

DEFAULT_NEGATIVE = "blurry, lowres, jpeg artifacts, noise, oversmoothed, watermark, text"


@dataclass(frozen=True)
class Options(FastOptions):
    prompt: str = option("", "What the image shows; guides the new detail.")
    negative_prompt: str = option(DEFAULT_NEGATIVE, "What to steer away from.")
    strength: float = option(
        0.4, "How much to change: 0 keeps the image, 1 repaints it fully.", ge=0.0, le=1.0
    )
    steps: int = option(
        20, "Sampler steps of the full schedule (strength × steps run).", ge=1, le=500
    )
    guidance: float = option(
        6.0, "Classifier-free guidance scale (1 disables it).", ge=0.0, le=30.0
    )
    scheduler: str = option(
        DEFAULT_SCHEDULER, "Sampler, by its AUTOMATIC1111-style name.", choices=tuple(SCHEDULERS)
    )


def pad_to_multiple(image: Image.Image, multiple: int) -> tuple[Image.Image, tuple[int, int]]:
    """Reflect-pad right/bottom to a multiple (no resampling, so pixels stay aligned)."""
    w, h = image.size
    pw, ph = (-w) % multiple, (-h) % multiple
    if not pw and not ph:
        return image, (w, h)
    arr = np.asarray(image)
    mode = "reflect" if min(w, h) > max(pw, ph) else "edge"
    arr = np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode=mode)
    return Image.fromarray(arr), (w, h)


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    # 1. nothing to do at strength 0: the input comes back unchanged, no model loads
    if opts.strength == 0:
        return image
    # 2. models and seed
    engine = ctx.engine
    pipe = engine.img2img(opts.scheduler)
    seed = ctx.resolve_seed()
    # 3. the VAE needs sizes divisible by 8
    padded, (w, h) = pad_to_multiple(image, 8)
    steps = effective_steps(opts.steps, opts.strength)
    total = max(1, int(steps * opts.strength))

    def on_step(pipe_, i, t, kwargs):
        ctx.progress("img2img", i + 1, total)
        return kwargs

    # 4. denoise, with the prompt's LoRAs and the speed-ups asked for applied for this call only
    fast = opts.speedups()
    with (
        conditioned(engine, pipe, opts, guidance=opts.guidance > 1.0) as (cond, networks),
        pipeline_speedups(pipe, fast, total, seed, on_step) as (callback, tensor_inputs),
    ):
        out = pipe(
            **cond.pipe_kwargs(),
            image=padded,
            strength=opts.strength,
            num_inference_steps=steps,
            guidance_scale=guidance_for(pipe, fast, opts.guidance, total),
            generator=engine.generator(seed),
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=tensor_inputs,
            output_type="pil",
        ).images[0]
    # 5. crop the padding away and record what ran
    ctx.record.update(
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        models=engine.describe(),
        **networks,
    )
    return out.crop((0, 0, w, h)) if out.size != (w, h) else out
