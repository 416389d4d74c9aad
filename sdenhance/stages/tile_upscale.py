"""Generative upscale: pre-upscale, then tile img2img over the whole image in tiles, guided by
a tile ControlNet (or, with `--controlnet none`, by the prompt and the image alone).

Each step denoises every tile of one latent canvas (tiles batched), merges the noise
predictions with feathered weights that sum to one, and takes ONE scheduler step on the whole
canvas (`sdenhance.diffusion.tiled_denoise`): the tiles never drift apart, so no seam forms and
no seam-fix pass is needed. Schedule, noise, model inputs and guidance are diffusers' own
(`sdenhance.diffusion.sampling`, `.predict`), so one tile equals diffusers' pipeline. The VAE
runs tiled in both directions; the result is colour-fixed against the pre-upscale (removing
VAE and ControlNet tone drift) and optionally blended with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sdenhance.diffusion.tiled_vae import vae_decode, vae_encode, vae_precision
from sdenhance.errors import SdenhanceError
from sdenhance.io import limits
from sdenhance.io.convert import from_array, to_array
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops import sizes
from sdenhance.ops.color import DEFAULT_METHOD as COLOR_DEFAULT
from sdenhance.ops.color import METHODS as COLOR_METHODS
from sdenhance.ops.shifted_tiles import TILINGS
from sdenhance.ops.upscale_plan import (
    ACTIVATION_BYTES,
    Plan,
    estimate_bytes,
    grid_plan,
    memory_fallbacks,
)
from sdenhance.options import MAX_SIDE, option
from sdenhance.stages import Context
from sdenhance.stages.fast_options import ControlFastOptions
from sdenhance.stages.img2img import DEFAULT_NEGATIVE
from sdenhance.stages.tile_checks import preflight, refuse_resemblance
from sdenhance.stages.tile_denoise import denoise
from sdenhance.stages.tile_memory import check_memory, free_cache, is_oom

__all__ = [
    "ACTIVATION_BYTES",
    "Options",
    "Plan",
    "estimate_bytes",
    "memory_fallbacks",
    "plan",
    "preflight",
    "refuse_resemblance",
    "run",
]

log = logging.getLogger("sdenhance")

MAX_OUTPUT_PIXELS = limits.MAX_OUTPUT_PIXELS  # 20000×20000: beyond, the buffers alone are huge


@dataclass(frozen=True)
class Options(ControlFastOptions):
    scale: float = option(
        2.0, "Upscale factor (≥ 1); ignored when width/height are given.", ge=1.0, le=32.0
    )
    width: int | None = option(
        None,
        "Exact output width in px (height follows the aspect unless given).",
        ge=1,
        le=MAX_SIDE,
    )
    height: int | None = option(
        None,
        "Exact output height in px (width follows the aspect unless given).",
        ge=1,
        le=MAX_SIDE,
    )
    prompt: str = option("", "What the image shows; guides the new detail in every tile.")
    negative_prompt: str = option(DEFAULT_NEGATIVE, "What to steer away from.")
    creativity: float = option(
        0.35,
        "Denoising strength: 0 = the pre-upscaler alone (Real-ESRGAN, offline, no diffusion "
        "model); portraits 0.2–0.4, landscapes 0.5–0.7.",
        ge=0.0,
        le=1.0,
    )
    resemblance: float = option(
        0.6,
        "ControlNet-tile conditioning scale: higher keeps closer to the input (refused with "
        "`--controlnet none`, where a preset's is left unused).",
        ge=0.0,
        le=2.0,
    )
    steps: int = option(
        20, "Sampler steps of the full schedule (creativity × steps run).", ge=1, le=500
    )
    guidance: float = option(
        6.0, "Classifier-free guidance scale (1 disables it; 4–8 typical).", ge=0.0, le=30.0
    )
    scheduler: str = option(
        DEFAULT_SCHEDULER, "Sampler, by its AUTOMATIC1111-style name.", choices=tuple(SCHEDULERS)
    )
    upscaler: str = option(
        "realesrgan-x4plus",
        "Pre-upscaler: realesrgan-x4plus, realesrgan-x4plus-anime, realesr-animevideov3-x2/x3/x4, "
        "lanczos, bicubic, or a .pth/.safetensors model path (needs sdenhance[upscalers]).",
    )
    tile: int | None = option(
        None,
        "Largest tile in output px, a multiple of 8 and ≥ 64; default: the model's native size "
        "(512 SD 1.5, 1024 SDXL).",
        ge=64,
        le=4096,
        multiple_of=8,
    )
    overlap: int = option(
        64,
        "Minimum tile overlap in output px, a multiple of 8, smaller than the tile.",
        ge=0,
        le=2048,
        multiple_of=8,
    )
    tiling: str = option(
        "merged",
        "Tile grid when the image needs several tiles: merged (overlapping tiles blended every "
        "step, seam-free) or shifted (no overlap, the grid moves every step: about 20% less "
        "model work, but each step's tile borders leave a faint trace).",
        choices=TILINGS,
    )
    tile_batch: int = option(
        4, "Tiles per model call (more is faster on a GPU, uses more memory).", ge=1, le=64
    )
    vae_tile: int = option(
        512,
        "VAE tile in output px (a multiple of 64): smaller uses less device memory, the result "
        "is the same (GroupNorm and attention see the whole image).",
        ge=128,
        le=4096,
        multiple_of=64,
    )
    color_fix: str = option(
        COLOR_DEFAULT,
        "Colour fix against the pre-upscale: local (a local colour map; drift removed at every "
        "scale), wavelet, lab, hist, adain or none.",
        choices=tuple(COLOR_METHODS),
    )
    blend: float = option(
        1.0,
        "Opacity of the generated result over the pre-upscale (lower restores texture, cures "
        "plastic skin).",
        ge=0.0,
        le=1.0,
    )

    def check(self) -> None:
        super().check()
        if self.width is not None and self.height is not None:
            limits.check_output_size((self.width, self.height))  # before any model loads
        # without `tile` the model's native size applies: checked by `preflight`
        if self.tile is not None and self.overlap >= self.tile:
            raise SdenhanceError(
                f"`overlap` must be smaller than `tile` ({self.tile}); got {self.overlap}"
            )


OFFLINE = ("creativity", 0, "for Real-ESRGAN alone")  # the way round a missing model


def in_effect(opts: Options) -> tuple[frozenset[str], str] | None:
    """At creativity 0 only the pre-upscaler runs: its options and the size are all that count."""
    if opts.creativity > 0:
        return None
    size = ("width", "height") if opts.width or opts.height else ("scale",)
    return frozenset(("creativity", "upscaler", *size)), "at creativity 0 only the upscaler runs"


def target_size(size: tuple[int, int], opts: Options) -> tuple[int, int]:
    """Output size from `scale` or `width`/`height` (the missing side keeps the aspect)."""
    out = sizes.target_size(size, scale=opts.scale, width=opts.width, height=opts.height)
    if out[0] * out[1] > MAX_OUTPUT_PIXELS:
        raise SdenhanceError(
            f"output {out[0]}×{out[1]} is over the limit of "
            f"{MAX_OUTPUT_PIXELS // 1_000_000} MP; use a smaller scale"
        )
    if out[0] < size[0] or out[1] < size[1]:
        raise SdenhanceError(
            f"output {out[0]}×{out[1]} is smaller than the input {size[0]}×{size[1]}; "
            "upscale only grows images"
        )
    return out


def plan(size_in: tuple[int, int], opts: Options, native: int = 512) -> Plan:
    """Tile grid and step count for an upscale (pure: used for the plan line and benchmarks)."""
    return grid_plan(
        size_in,
        target_size(size_in, opts),
        tile=opts.tile or native,
        overlap=opts.overlap,
        steps=opts.steps,
        creativity=opts.creativity,
        tile_batch=opts.tile_batch,
        tiling=opts.tiling,
    )


# ---------------------------------------------------------------------------------------------
# the stage's steps


def pre_upscale(
    image: Image.Image, size: tuple[int, int], opts: Options, ctx: Context
) -> Image.Image:
    from sdenhance.upscalers import upscale as upscalers

    return upscalers.upscale(
        image,
        size=size,
        upscaler=opts.upscaler,
        progress=lambda label, done, total: ctx.progress(f"pre-upscale {label}", done, total),
        allow_pickle=ctx.allow_pickle,
    )


def pad_canvas(up_arr: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """The pre-upscale edge-padded to the latent grid (its width and height multiples of 8)."""
    cw, ch = canvas
    return np.pad(
        up_arr, ((0, ch - up_arr.shape[0]), (0, cw - up_arr.shape[1]), (0, 0)), mode="edge"
    )


def generate(
    size_in: tuple[int, int], up_arr: np.ndarray, opts: Options, ctx: Context
) -> tuple[np.ndarray, Plan]:
    """Encode, denoise in tiles and decode the pre-upscaled image (H, W, 3) -> same size."""
    # 1. plan the work; refuse what cannot fit before any model runs
    engine = ctx.engine
    work = plan(size_in, opts, engine.family_resolution)
    check_memory(work, opts, engine)
    log.info("plan: %s", work.describe())
    # 2. models: the ControlNet first, so one of the wrong family fails before the base loads
    if engine.controlnet is None and opts.resemblance != Options.resemblance:
        log.info("no ControlNet: `resemblance` %g is left unused", opts.resemblance)
    vae = engine.base.vae
    # 3. encode the canvas (padded to the latent grid) with the tiled VAE
    canvas = pad_canvas(up_arr, work.canvas)
    on = {"tile": opts.vae_tile, "device": engine.device, "dtype": engine.dtype}
    ctx.progress("encode", 0, 1)
    with vae_precision(vae, engine.dtype) as vae_dtype:  # fp32 where the VAE asks for it
        init = vae_encode(vae, canvas, **{**on, "dtype": vae_dtype})
    # 4. denoise every tile together, step by step
    latents = denoise(init, canvas, work, opts, ctx)
    # 5. decode
    ctx.progress("decode", 0, 1)
    with vae_precision(vae, engine.dtype) as vae_dtype:
        out = vae_decode(vae, latents.cpu(), **{**on, "dtype": vae_dtype})
    return out[: up_arr.shape[0], : up_arr.shape[1]], work


def generate_within_memory(
    size_in: tuple[int, int], up_arr: np.ndarray, opts: Options, ctx: Context
) -> tuple[np.ndarray, Plan, Options]:
    """`generate`, stepping down the tile batch, then the tile size, when memory runs out."""
    engine = ctx.engine
    tries = memory_fallbacks(opts, engine.family_resolution)
    for n, attempt in enumerate(tries):
        try:
            out, work = generate(size_in, up_arr, attempt, ctx)
            return out, work, attempt
        except Exception as exc:
            if not is_oom(exc):
                raise
            free_cache(engine)
            if n + 1 == len(tries):
                raise SdenhanceError(
                    f"out of {engine.device.type.upper()} memory even with --tile-batch 1 and "
                    "--tile 256",
                    hint="use --offload model, --dtype fp16/bf16, or a smaller --scale",
                ) from None
            nxt = tries[n + 1]
            log.warning(
                "out of memory; retrying with --tile-batch %d --tile %s --vae-tile %d",
                nxt.tile_batch,
                nxt.tile or engine.family_resolution,
                nxt.vae_tile,
            )
    raise AssertionError("unreachable: the last try raises")


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    # 1. check inputs and the output size (before any model loads)
    size_out = target_size(image.size, opts)
    if opts.creativity == 0:
        # the pre-upscaler alone: offline, no diffusion model
        return pre_upscale(image, size_out, opts, ctx)
    preflight(opts, ctx)
    engine = ctx.engine
    started = time.perf_counter()

    # 2. pre-upscale to the target
    up_arr = to_array(pre_upscale(image, size_out, opts, ctx))

    # 3. generate; when memory runs out, step down the tile batch, then the tile size
    out, work, attempt = generate_within_memory(image.size, up_arr, opts, ctx)

    # 4. colour-fix against the pre-upscale, blend
    if opts.color_fix != "none":
        from sdenhance.ops.color import color_transfer

        out = color_transfer(out, up_arr, opts.color_fix)
    if opts.blend < 1.0:
        out = opts.blend * out + (1.0 - opts.blend) * up_arr

    # 5. record what ran
    ctx.record.update(
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        models=engine.describe(),
        tiles=len(work.tiles),
        seconds=round(time.perf_counter() - started, 2),
    )
    if attempt is not opts:
        ctx.record["memory_fallback"] = {
            "tile_batch": attempt.tile_batch,
            "tile": attempt.tile,
            "vae_tile": attempt.vae_tile,
        }
    return from_array(out)
