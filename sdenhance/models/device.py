"""Device and dtype (cuda > mps > cpu; bf16 on CPUs with native bf16) and attention backend."""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdenhance.errors import SdenhanceError

if TYPE_CHECKING:
    import torch


def pick_device(name: str = "auto") -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SdenhanceError(
            f"`--device {name}` asked for, but torch sees no CUDA device",
            hint="use --device cpu or auto",
        )
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise SdenhanceError(
            "`--device mps` asked for, but MPS is not available", hint="use --device cpu or auto"
        )
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """Measured fp32/bf16 time ratio of a conv+matmul block on this CPU (>1: bf16 faster).

    A diagnostic for `doctor` only: too noisy on a shared machine to choose the dtype with.
    """
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.randn(1, 64, 64, 64)
    a, b = torch.randn(256, 512), torch.randn(512, 512)

    def bench(dtype: torch.dtype) -> float:
        c, xx, aa, bb = conv.to(dtype), x.to(dtype), a.to(dtype), b.to(dtype)
        with torch.no_grad():
            c(xx), aa @ bb  # warm-up
            t0 = time.perf_counter()
            for _ in range(3):
                c(xx)
                aa @ bb
            return time.perf_counter() - t0

    return bench(torch.float32) / max(bench(torch.bfloat16), 1e-9)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX), read from its flags.

    A property of the machine, not a timing: the same machine always picks the same dtype, so
    a seed reproduces. Where bf16 is native the real SD 1.5 UNet runs 1.58× faster in bf16
    than fp32 (bench/RESULTS.md, bench 6); elsewhere bf16 is emulated and slower.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """fp16 on GPUs; on CPU bf16 where the CPU has native bf16, else fp32; explicit names win."""
    import torch

    if name == "fp32":
        return torch.float32
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        if device.type == "cpu":
            raise SdenhanceError("`--dtype fp16` is not supported on CPU", hint="use fp32 or bf16")
        return torch.float16
    if device.type in ("cuda", "mps"):
        return torch.float16
    env = os.environ.get("SDENHANCE_CPU_DTYPE")
    if env in ("fp32", "bf16"):
        return pick_dtype(env, device)
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def attention_backend(device: torch.device) -> str:
    if device.type == "cuda" and importlib.util.find_spec("xformers") is not None:
        return "xformers"
    return "sdpa"


@functools.lru_cache(maxsize=1)
def _dtype_keyword() -> str:
    """diffusers ≥ 0.42 takes `dtype=` and warns on `torch_dtype=`; older releases know only the
    latter."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


def dtype_kwargs(dtype: Any) -> dict[str, Any]:
    return {_dtype_keyword(): dtype}
