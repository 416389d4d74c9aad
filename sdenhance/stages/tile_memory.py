"""Memory of a tiled upscale: estimate it on the CPU before any work, step down on out-of-memory."""

from __future__ import annotations

import dataclasses
from typing import Any

from sdenhance.errors import SdenhanceError

# `work` is a tile_upscale.Plan and `opts` its Options (not imported: that module imports this)

# peak activation bytes of one fp32 sample through UNet + ControlNet on a native-size tile
ACTIVATION_BYTES = {"sd15": 1.2e9, "sdxl": 4.0e9}


def estimate_bytes(work: Any, opts: Any, family: str, dtype_bytes: int) -> int:
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


def check_memory(work: Any, opts: Any, engine: Any) -> None:
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


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` is the device (or the host) running out of memory."""
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def memory_fallbacks(opts: Any, native: int) -> list[Any]:
    """What to try when memory runs out: halve the tile batch to 1, then smaller tiles (down
    to 256 px) with a smaller VAE tile; each step costs speed, not quality of the merge."""
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


def free_cache(engine: Any) -> None:
    """Give cached device memory back before a retry."""
    import gc

    import torch

    gc.collect()
    if engine.device.type == "cuda":
        torch.cuda.empty_cache()
    elif engine.device.type == "mps":
        torch.mps.empty_cache()
