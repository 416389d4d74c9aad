"""Generative upscale: pre-upscale, then ControlNet-tile img2img over the whole image in tiles.

Each step denoises every tile of one latent canvas (tiles batched), merges the noise
predictions with feathered weights that sum to one, and takes ONE scheduler step on the whole
canvas (`sdenhance.tiled_diffusion`): the tiles never drift apart, so no seam forms and no
seam-fix pass is needed. The VAE
runs tiled in both directions with overlapping, blended tiles; the result is colour-fixed
against the pre-upscale (removing VAE and ControlNet tone drift) and optionally blended with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from sdenhance.diffusion.tiled_denoise import LATENT_FACTOR, PredictFn, tiled_denoise
from sdenhance.diffusion.tiled_vae import vae_decode, vae_encode, vae_tiling
from sdenhance.errors import SdenhanceError
from sdenhance.io.convert import from_array, to_array
from sdenhance.models.engine import warn_long_prompts
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops import tiling
from sdenhance.ops.color import DEFAULT_METHOD as COLOR_DEFAULT
from sdenhance.ops.color import METHODS as COLOR_METHODS
from sdenhance.options import option
from sdenhance.stages import Context
from sdenhance.stages.img2img import DEFAULT_NEGATIVE, effective_steps

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sdenhance")

MAX_OUTPUT_PIXELS = 400_000_000  # 20000×20000: beyond this, memory for the buffers alone is huge


@dataclass(frozen=True)
class Options:
    scale: float = option(
        2.0, "Upscale factor (≥ 1); ignored when width/height are given.", ge=1.0, le=32.0
    )
    width: int | None = option(
        None, "Exact output width in px (height follows the aspect unless given).", ge=1
    )
    height: int | None = option(
        None, "Exact output height in px (width follows the aspect unless given).", ge=1
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
        0.6, "ControlNet-tile conditioning scale: higher keeps closer to the input.", ge=0.0, le=2.0
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
        "Largest tile in output px, a multiple of 8 and ≥ 64; default: the model's native size (512 SD 1.5, 1024 SDXL).",
        ge=64,
        multiple_of=8,
    )
    overlap: int = option(
        64,
        "Minimum tile overlap in output px, a multiple of 8, smaller than the tile.",
        ge=0,
        multiple_of=8,
    )
    tile_batch: int = option(
        4, "Tiles per model call (more is faster on a GPU, uses more memory).", ge=1, le=64
    )
    vae_tile: int = option(
        512,
        "VAE tile in output px (a multiple of 64); smaller uses less memory.",
        ge=128,
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
        "Opacity of the generated result over the pre-upscale (lower restores texture, cures plastic skin).",
        ge=0.0,
        le=1.0,
    )

    def check(self) -> None:
        tile = self.tile or 512
        if self.overlap >= tile:
            raise SdenhanceError(
                f"`overlap` must be smaller than `tile` ({tile}); got {self.overlap}"
            )


# a missing diffusion model has an offline way round: the pre-upscaler alone
OFFLINE = ("creativity", 0, "for Real-ESRGAN alone")


def in_effect(opts: Options) -> tuple[frozenset[str], str] | None:
    """At creativity 0 only the pre-upscaler runs: its options and the size are all that count."""
    if opts.creativity > 0:
        return None
    size = ("width", "height") if opts.width or opts.height else ("scale",)
    return frozenset(("creativity", "upscaler", *size)), "at creativity 0 only the upscaler runs"


def target_size(size: tuple[int, int], opts: Options) -> tuple[int, int]:
    """Output size from `scale` or `width`/`height` (the missing side keeps the aspect)."""
    w, h = size
    if opts.width and opts.height:
        out = (opts.width, opts.height)
    elif opts.width:
        out = (opts.width, max(1, round(h * opts.width / w)))
    elif opts.height:
        out = (max(1, round(w * opts.height / h)), opts.height)
    else:
        out = (max(1, round(w * opts.scale)), max(1, round(h * opts.scale)))
    if out[0] * out[1] > MAX_OUTPUT_PIXELS:
        raise SdenhanceError(
            f"output {out[0]}×{out[1]} is over the limit of {MAX_OUTPUT_PIXELS // 1_000_000} MP; use a smaller scale"
        )
    if out[0] < w or out[1] < h:
        raise SdenhanceError(
            f"output {out[0]}×{out[1]} is smaller than the input {w}×{h}; upscale only grows images"
        )
    return out


@dataclass(frozen=True)
class Plan:
    """The work of one upscale, known before any model loads."""

    size_in: tuple[int, int]
    size_out: tuple[int, int]
    canvas: tuple[int, int]  # padded to a multiple of 8
    tiles: list[tiling.Tile]  # in latent units
    denoise_steps: int
    tile_batch: int

    @property
    def evaluations(self) -> int:
        """UNet (+ControlNet) forward passes, CFG pairs counted once."""
        return self.denoise_steps * len(self.tiles)

    def describe(self) -> str:
        t = self.tiles[0]
        return (
            f"{self.size_in[0]}×{self.size_in[1]} → {self.size_out[0]}×{self.size_out[1]}: "
            f"{len(self.tiles)} tile(s) of {t.width * LATENT_FACTOR}×{t.height * LATENT_FACTOR}, "
            f"{self.denoise_steps} step(s), {self.evaluations} model evaluations"
        )


def plan(size_in: tuple[int, int], opts: Options, native: int = 512) -> Plan:
    """Tile grid and step count for an upscale (pure: used for the plan line and benchmarks)."""
    out = target_size(size_in, opts)
    canvas = (math.ceil(out[0] / 8) * 8, math.ceil(out[1] / 8) * 8)
    lw, lh = canvas[0] // LATENT_FACTOR, canvas[1] // LATENT_FACTOR
    max_tile = (opts.tile or native) // LATENT_FACTOR
    overlap = opts.overlap // LATENT_FACTOR
    tw = tiling.fit_tile(lw, max_tile, overlap)
    th = tiling.fit_tile(lh, max_tile, overlap)
    tiles = tiling.tile_grid(lw, lh, tw, th, overlap)
    steps = 0
    if opts.creativity > 0:
        steps = int(effective_steps(opts.steps, opts.creativity) * opts.creativity)
    return Plan(size_in, out, canvas, tiles, steps, opts.tile_batch)


# ---------------------------------------------------------------------------------------------
# the stage


def _conditioning(engine: Any, opts: Options, guidance: bool) -> dict[str, Any]:
    """Prompt embeddings once per image (CFG pairs as [uncond, cond])."""
    import torch

    pipe = engine.controlnet_img2img(None)
    warn_long_prompts(pipe.tokenizer, opts.prompt, opts.negative_prompt)
    device = engine.device
    if engine.family == "sdxl":
        pe, npe, pooled, npooled = pipe.encode_prompt(
            prompt=opts.prompt,
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=guidance,
            negative_prompt=opts.negative_prompt or None,
        )
        if guidance:
            pe, pooled = torch.cat([npe, pe]), torch.cat([npooled, pooled])
        return {"prompt_embeds": pe, "pooled": pooled}
    pe, npe = pipe.encode_prompt(opts.prompt, device, 1, guidance, opts.negative_prompt or None)
    return {"prompt_embeds": torch.cat([npe, pe]) if guidance else pe}


def _make_predict(
    engine: Any, opts: Options, control: np.ndarray, cond: dict[str, Any]
) -> PredictFn:
    """The model call for a batch of latent tiles: ControlNet-tile + UNet with CFG."""
    import torch

    unet, controlnet = engine.base.unet, engine.controlnet
    device, dtype = engine.device, engine.dtype
    guidance = opts.guidance > 1.0
    reps = 2 if guidance else 1
    f = LATENT_FACTOR

    def predict(crops: torch.Tensor, group: Sequence[tiling.Tile], t: Any) -> torch.Tensor:
        n = crops.shape[0]
        x = torch.cat([crops] * reps).to(device, dtype)
        ctrl = np.stack([control[tl.y0 * f : tl.y1 * f, tl.x0 * f : tl.x1 * f] for tl in group])
        ctrl_t = torch.from_numpy(ctrl.transpose(0, 3, 1, 2).copy()).to(device, dtype)
        ctrl_t = torch.cat([ctrl_t] * reps)
        emb = cond["prompt_embeds"].repeat_interleave(n, dim=0)
        kwargs: dict[str, Any] = {}
        if "pooled" in cond:
            th, tw = group[0].height * f, group[0].width * f
            time_ids = torch.tensor([[th, tw, 0, 0, th, tw]], device=device, dtype=dtype)
            kwargs["added_cond_kwargs"] = {
                "text_embeds": cond["pooled"].repeat_interleave(n, dim=0),
                "time_ids": time_ids.repeat(n * reps, 1),
            }
        with torch.no_grad():
            down, mid = controlnet(
                x,
                t,
                encoder_hidden_states=emb,
                controlnet_cond=ctrl_t,
                conditioning_scale=opts.resemblance,
                return_dict=False,
                **kwargs,
            )
            eps = unet(
                x,
                t,
                encoder_hidden_states=emb,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
                return_dict=False,
                **kwargs,
            )[0]
        if guidance:
            uncond, text = eps.chunk(2)
            eps = uncond + opts.guidance * (text - uncond)
        return eps.float()

    return predict


def pre_upscale(
    image: Image.Image, size: tuple[int, int], opts: Options, ctx: Context
) -> Image.Image:
    from sdenhance.upscalers import upscale as upscalers

    return upscalers.upscale(
        image,
        size=size,
        upscaler=opts.upscaler,
        progress=lambda label, done, total: ctx.progress(f"pre-upscale {label}", done, total),
    )


# ---------------------------------------------------------------------------------------------
# memory: estimate on CPU, step down on out-of-memory


# peak activation bytes of one fp32 sample through UNet + ControlNet on a native-size tile
ACTIVATION_BYTES = {"sd15": 1.2e9, "sdxl": 4.0e9}


def estimate_bytes(work: Plan, opts: Options, family: str, dtype_bytes: int) -> int:
    """Memory an upscale needs beyond the loaded weights: image buffers plus the peak of the
    tile activations and the VAE tile (an estimate, deliberately on the high side)."""
    w, h = work.canvas
    buffers = w * h * 3 * 4 * 6  # pre-upscale, canvas, output, colour-fix temporaries
    t = work.tiles[0]
    native = 1024 if family == "sdxl" else 512
    per_sample = ACTIVATION_BYTES[family] * (t.width * t.height * 64) / native**2 * dtype_bytes / 4
    samples = min(opts.tile_batch, len(work.tiles)) * (2 if opts.guidance > 1.0 else 1)
    vae = min(opts.vae_tile, max(w, h)) ** 2 * 128 * 4 * 8  # decoder's full-size feature maps
    return int(buffers + max(per_sample * samples, vae))


def check_memory(work: Plan, opts: Options, engine: Any) -> None:
    """On the CPU, refuse work that cannot fit in free memory instead of swapping or dying."""
    if engine.device.type != "cpu":
        return
    import psutil

    need = estimate_bytes(work, opts, engine.family, engine.dtype.itemsize)
    free = psutil.virtual_memory().available
    if need > 0.9 * free:
        raise SdenhanceError(
            f"this upscale needs about {need / 2**30:.1f} GiB of memory but {free / 2**30:.1f} GiB is free",
            hint="lower --tile-batch or --tile, or upscale in two smaller passes",
        )


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def memory_fallbacks(opts: Options, native: int) -> list[Options]:
    """What to try when memory runs out: halve the tile batch to 1, then smaller tiles (down
    to 256 px) with a smaller VAE tile; each step costs speed, not quality of the merge."""
    import dataclasses

    tries = [opts]
    batch = opts.tile_batch
    while batch > 1:
        batch //= 2
        tries.append(dataclasses.replace(opts, tile_batch=batch))
    tile = opts.tile or native
    while tile > 256:
        tile = max(256, tile // 2 // 8 * 8)
        overlap = min(opts.overlap, tile // 4 // 8 * 8)
        tries.append(
            dataclasses.replace(opts, tile_batch=1, tile=tile, overlap=overlap, vae_tile=256)
        )
    return tries


# ---------------------------------------------------------------------------------------------
# the stage


def generate(
    size_in: tuple[int, int], up_arr: np.ndarray, opts: Options, ctx: Context
) -> tuple[np.ndarray, Plan]:
    """Encode, denoise in tiles and decode the pre-upscaled image (H, W, 3) -> same size."""
    import torch

    from sdenhance.models.schedulers import make_scheduler

    engine = ctx.engine
    work = plan(size_in, opts, engine.native_resolution)
    check_memory(work, opts, engine)
    log.info("plan: %s", work.describe())

    # pad to the latent grid, encode the whole canvas with the tiled VAE
    cw, ch = work.canvas
    canvas = np.pad(
        up_arr, ((0, ch - up_arr.shape[0]), (0, cw - up_arr.shape[1]), (0, 0)), mode="edge"
    )
    engine.controlnet  # noqa: B018  first: a ControlNet of the wrong family fails before the base loads
    vae = engine.base.vae
    vae_tile, vae_overlap = vae_tiling(opts.vae_tile, (cw, ch))
    ctx.progress("encode", 0, 1)
    init = vae_encode(
        vae, canvas, tile=vae_tile, overlap=vae_overlap, device=engine.device, dtype=engine.dtype
    )

    # schedule and noise: img2img starts part-way down the schedule
    scheduler = make_scheduler(opts.scheduler, engine.base.scheduler.config)
    steps = effective_steps(opts.steps, opts.creativity)
    scheduler.set_timesteps(steps)
    start = steps - int(steps * opts.creativity)
    timesteps = scheduler.timesteps[start * scheduler.order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    generator = engine.generator(ctx.resolve_seed())
    noise = torch.randn(init.shape, generator=generator, dtype=torch.float32)
    latents = scheduler.add_noise(init, noise, timesteps[:1]).to(engine.device)

    # denoise all tiles together each step
    cond = _conditioning(engine, opts, opts.guidance > 1.0)
    predict = _make_predict(engine, opts, canvas, cond)
    n_tiles = len(work.tiles)
    latents = tiled_denoise(
        latents,
        scheduler,
        timesteps,
        work.tiles,
        opts.overlap // LATENT_FACTOR,
        predict,
        batch=opts.tile_batch,
        generator=generator,
        progress=lambda done, total: ctx.progress(f"denoise ({n_tiles} tiles)", done, total),
    )
    ctx.progress("decode", 0, 1)
    out = vae_decode(
        vae,
        latents.cpu(),
        tile=vae_tile,
        overlap=vae_overlap,
        device=engine.device,
        dtype=engine.dtype,
    )
    return out[: up_arr.shape[0], : up_arr.shape[1]], work


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    # 1. check inputs and the output size (before any model loads)
    size_out = target_size(image.size, opts)
    if opts.creativity == 0:
        # the pre-upscaler alone: offline, no diffusion model
        return pre_upscale(image, size_out, opts, ctx)
    engine = ctx.engine
    started = time.perf_counter()

    # 2. pre-upscale to the target
    up_arr = to_array(pre_upscale(image, size_out, opts, ctx))

    # 3. generate; when memory runs out, step down the tile batch, then the tile size
    tries = memory_fallbacks(opts, engine.native_resolution)
    for n, attempt in enumerate(tries):
        try:
            out, work = generate(image.size, up_arr, attempt, ctx)
            break
        except Exception as exc:
            if not _is_oom(exc):
                raise
            _free_cache(engine)
            if n + 1 == len(tries):
                raise SdenhanceError(
                    f"out of {engine.device.type.upper()} memory even with --tile-batch 1 and --tile 256",
                    hint="use --offload model, --dtype fp16/bf16, or a smaller --scale",
                ) from None
            nxt = tries[n + 1]
            log.warning(
                "out of memory; retrying with --tile-batch %d --tile %s --vae-tile %d",
                nxt.tile_batch,
                nxt.tile or engine.native_resolution,
                nxt.vae_tile,
            )

    # 4. colour-fix against the pre-upscale, blend
    if opts.color_fix != "none":
        from sdenhance.ops.color import color_transfer

        out = color_transfer(out, up_arr, opts.color_fix)
    if opts.blend < 1.0:
        out = opts.blend * out + (1.0 - opts.blend) * up_arr
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


def _free_cache(engine: Any) -> None:
    import gc

    import torch

    gc.collect()
    if engine.device.type == "cuda":
        torch.cuda.empty_cache()
    elif engine.device.type == "mps":
        torch.mps.empty_cache()
