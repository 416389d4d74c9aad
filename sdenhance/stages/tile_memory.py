"""Memory of a tiled upscale on the device: refuse what cannot fit, recognise and recover from
an out-of-memory error (the estimate and the fallbacks are `ops.upscale_plan`)."""

from __future__ import annotations

from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.ops.upscale_plan import estimate_bytes


def check_memory(work: Any, opts: Any, engine: Any) -> None:
    """On the CPU, refuse work that cannot fit in free memory instead of swapping or dying."""
    if engine.device.type != "cpu":
        return
    import psutil

    need = estimate_bytes(work, opts, engine.family, engine.dtype.itemsize)
    free = psutil.virtual_memory().available
    if need > 0.9 * free:
        raise SdenhanceError(
            f"this upscale needs about {need / 2**30:.1f} GiB of memory but {free / 2**30:.1f} GiB "
            "is free",
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


def free_cache(engine: Any) -> None:
    """Give cached device memory back before a retry."""
    import gc

    import torch

    gc.collect()
    if engine.device.type == "cuda":
        torch.cuda.empty_cache()
    elif engine.device.type == "mps":
        torch.mps.empty_cache()
