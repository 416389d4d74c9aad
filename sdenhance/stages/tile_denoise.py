"""The denoising step of the tiled upscale: the whole latent canvas, every tile each step (merged
or shifted grids, `--tiling`), with the opt-in speed-ups of the stage's options applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sdenhance.diffusion.conditioning import conditioned
from sdenhance.diffusion.predict import make_predict, stack_embeddings
from sdenhance.diffusion.sampling import img2img_timesteps, noised_latents
from sdenhance.diffusion.shifted_denoise import denoise_tiles
from sdenhance.diffusion.token_merging import merged_tokens
from sdenhance.models.schedulers import make_scheduler
from sdenhance.ops.sizes import LATENT_FACTOR, effective_steps
from sdenhance.stages import Context

if TYPE_CHECKING:
    import torch


def denoise(
    init: torch.Tensor, control: np.ndarray, work: Any, opts: Any, ctx: Context
) -> torch.Tensor:
    """img2img of the whole latent canvas at `creativity`, all tiles merged each step.

    Step by step what diffusers' (ControlNet) img2img pipeline does for one image: the tail of
    the schedule, noise from the seeded generator, the same model inputs and guidance; the
    speed-ups of `opts` (all off by default) change that where asked.
    """
    engine = ctx.engine
    scheduler = make_scheduler(opts.scheduler, engine.base.scheduler.config)
    steps = effective_steps(opts.steps, opts.creativity)
    timesteps = img2img_timesteps(scheduler, steps, opts.creativity, engine.device)
    seed = ctx.resolve_seed()
    generator = engine.generator(seed)
    latents = noised_latents(
        init, scheduler, timesteps, generator, device=engine.device, dtype=engine.dtype
    )
    speedups = opts.speedups()
    unet = engine.base.unet
    # the prompt (A1111 syntax) and its LoRAs, and token merging, for this denoise only
    with (
        conditioned(engine, engine.base, opts, guidance=opts.guidance > 1.0) as (embeds, used),
        merged_tokens(unet, speedups.token_merging, seed),
    ):
        predict = make_predict(
            unet,
            stack_embeddings(embeds, opts.guidance),
            controlnet=engine.controlnet,
            control=control,
            resemblance=opts.resemblance,
            device=engine.device,
            dtype=engine.dtype,
            speedups=speedups,
        )
        n_tiles = len(work.tiles)
        latents = denoise_tiles(
            opts.tiling,
            latents,
            scheduler,
            timesteps,
            work.tiles,
            opts.overlap // LATENT_FACTOR,
            predict,
            batch=opts.tile_batch,
            seed=seed,
            generator=generator,
            progress=lambda done, total: ctx.progress(f"denoise ({n_tiles} tiles)", done, total),
            on_step=getattr(predict, "start_step", None),
        )
    ctx.record.update(used)
    return latents
