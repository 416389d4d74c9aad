"""The GPU path, measured: one script that fits in eight minutes on a CUDA machine.

With the real-size random SD 1.5 models (`random_models`: drawn on the GPU, saved in fp16, then
loaded through `Enhancer` like downloaded weights) it measures, in this order:

1. one denoising step of a 512² tile (UNet; UNet + ControlNet) in fp16, bf16 and fp32;
2. attention: PyTorch SDPA, xformers (when installed) and diffusers' classic processor;
3. `--tile-batch` 1/2/4/8 on a 2048² upscale;
4. ours against the naive per-tile baseline (`naive.py`) at 2048² output;
5. peak VRAM per output megapixel, 512² to 4096²;
6. the out-of-memory step-down under a forced memory limit
   (`torch.cuda.set_per_process_memory_fraction`);
7. `torch.compile` on and off (last: the slowest, skipped when the time budget is short).

Each measurement is one row in its own try/except, and the markdown file is rewritten after
every row, so a run cut short keeps what it finished. Without a GPU it says so and measures
nothing; `--quick` runs every section on the tiny test models in seconds (a smoke run that keeps
this script from rotting: tests/test_bench_gpu.py), `--device cpu` the real-size models on the
CPU (slow: pick sections with `--only`).

    python3 bench/gpu.py --out gpu.md --time-budget 420
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))  # harness, naive, random_models, suites

from gpu_report import Budget, Report, Table, first_line  # noqa: E402
from gpu_steps import attention, compiled, dtype_name, dtypes  # noqa: E402
from gpu_upscales import naive, oom, tile_batch, vram  # noqa: E402
from harness import fmt  # noqa: E402

NO_GPU = (
    "no CUDA GPU here (torch {torch}, `torch.cuda.is_available()` is False): bench/gpu.py "
    "measures the GPU path, so nothing was measured. `--quick` runs every section on the CPU "
    "with the tiny test models (a smoke run, not numbers); `--device cpu` runs the real-size "
    "models on this CPU (slow: pick sections with `--only`)."
)


# ---------------------------------------------------------------------------------------------
# what every section gets


@dataclass(frozen=True)
class Settings:
    """Sizes of one run: the real-size defaults, or `QUICK` (tiny models, a smoke run)."""

    quick: bool = False
    step_latent: int = 64  # one 512² tile
    warmup: int = 3
    repeats: int = 10
    big_input: int = 1024  # → big_output² for sections 3, 4 and 6
    big_output: int = 2048
    tile: int | None = None  # the model's native 512
    overlap: int = 64
    steps: int = 20  # with creativity 0.35: the stage defaults, 7 denoising steps
    creativity: float = 0.35
    tile_batches: tuple[int, ...] = (1, 2, 4, 8)
    vram_sides: tuple[int, ...] = (512, 1024, 2048, 4096)
    one_step: tuple[int, float] = (10, 0.1)  # steps × creativity of one denoising step
    compile_latents: tuple[int, ...] = (64, 56)
    compile_backend: str = "inductor"
    prompt: str = "a photo of a cat, detailed fur"
    scale_need: float = 1.0  # multiplies the time each row is expected to need


QUICK = Settings(
    quick=True,
    step_latent=8,
    warmup=1,
    repeats=1,
    big_input=64,
    big_output=128,
    tile=64,
    overlap=16,
    steps=4,
    creativity=0.5,
    vram_sides=(64, 128),
    one_step=(4, 0.25),
    compile_latents=(8, 6),
    compile_backend="eager",  # dynamo's graph capture only: inductor would compile for minutes
    scale_need=0.0,
)


@dataclass
class Run:
    settings: Settings
    report: Report
    budget: Budget
    enhancer: Any
    device: Any  # torch.device
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Any:
        return self.enhancer.engine

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def free(self) -> None:
        import gc

        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def measure(self, t: Table, label: str, fn: Callable[[], list[Any]], need: float = 0.0) -> bool:
        """One row: `label` and the cells `fn()` returns; a skip or a failure is a row too."""
        need = max(1.0, need * self.settings.scale_need)
        left = self.budget.left()
        if left < need:
            note = (
                f"skipped: {max(left, 0):.0f} s of the time budget left, about {need:.0f} s needed"
            )
            self.report.add(t, [label, note])
            return False
        try:
            cells = fn()
        except Exception as exc:  # one failed measurement must not cost the others
            traceback.print_exception(exc, limit=-4)
            self.free()
            self.report.add(t, [label, f"error: {first_line(exc)}"])
            return False
        self.report.add(t, [label, *cells])
        return True


# ---------------------------------------------------------------------------------------------
# the run

SECTIONS: dict[str, Callable[[Run], None]] = {
    "dtype": dtypes,
    "attention": attention,
    "tile_batch": tile_batch,
    "naive": naive,
    "vram": vram,
    "oom": oom,
    "compile": compiled,  # last: the slowest, and the first to go when time is short
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", type=Path, default=None, help="markdown file (rewritten after each row)"
    )
    p.add_argument("--time-budget", type=float, default=420.0, help="seconds from process start")
    p.add_argument("--quick", action="store_true", help="tiny models, tiny sizes: a smoke run")
    p.add_argument("--device", default="auto", help="auto (CUDA if present) | cuda | cuda:N | cpu")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--cache", default=None, help="model cache (default /tmp/sdenhance-bench)")
    p.add_argument("--model", default=None, help="an SD 1.5 folder instead of the random models")
    p.add_argument("--controlnet", default=None, help="its tile ControlNet (with --model)")
    args = p.parse_args(argv)
    if bool(args.model) != bool(args.controlnet):
        p.error("--model and --controlnet go together")
    return args


def machine_rows(
    run: Run, models: str, build_s: float | None, load_s: float
) -> list[tuple[str, str]]:
    import importlib.util

    import diffusers
    import torch
    import transformers

    from sdenhance.models.device import attention_backend

    def version(name: str) -> str:
        if importlib.util.find_spec(name) is None:
            return "not installed"
        return getattr(__import__(name), "__version__", "installed")

    gpu = "none"
    if run.cuda:
        props = torch.cuda.get_device_properties(run.device)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor}"
    return [
        ("GPU", gpu),
        (
            "Python / torch (CUDA)",
            f"{platform.python_version()} / {torch.__version__} "
            f"({torch.version.cuda or 'no CUDA'})",
        ),
        ("diffusers / transformers", f"{diffusers.__version__} / {transformers.__version__}"),
        ("xformers / triton", f"{version('xformers')} / {version('triton')}"),
        ("C compiler (Triton builds its launchers with it)", shutil.which("cc") or "none"),
        (
            "engine: device, dtype, attention",
            f"{run.engine.device}, "
            f"{dtype_name(run.engine.dtype)}, {attention_backend(run.engine.device)}",
        ),
        ("models", models),
        (
            "model build s (this run) / load s",
            f"{fmt(build_s) if build_s else 'cached'} / {load_s:.1f}",
        ),
    ]


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse(argv)
    budget = Budget(args.time_budget, started)
    import torch

    wanted = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in SECTIONS]
    if unknown:
        print(
            f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}",
            file=sys.stderr,
        )
        return 2
    cuda = torch.cuda.is_available()
    device = torch.device(
        "cuda"
        if args.device == "auto" and cuda
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # some calls need the index
    report = Report(
        args.out, "sdenhance on a GPU" + (" (quick: tiny models)" if args.quick else "")
    )
    if device.type != "cuda" and args.device == "auto" and not args.quick:
        message = NO_GPU.format(torch=torch.__version__)
        print(message, file=sys.stderr)
        report.intro.append(message)
        report.save()
        return 0
    settings = QUICK if args.quick else Settings()
    if not settings.quick and device.type == "cpu":  # real-size models on a CPU: seconds a call
        settings = dataclasses.replace(settings, warmup=1, repeats=1)
    threads = torch.get_num_threads()
    if settings.quick and device.type == "cpu":
        torch.set_num_threads(1)  # tiny models: a second spinning thread costs more than it gives
    try:
        return _measure(args, settings, report, budget, device, wanted)
    finally:
        torch.set_num_threads(threads)


def _measure(
    args: argparse.Namespace,
    settings: Settings,
    report: Report,
    budget: Budget,
    device: Any,
    wanted: list[str],
) -> int:
    try:
        run = _load(args, settings, report, budget, device)
    except Exception as exc:
        traceback.print_exc()
        report.intro.append(f"**Loading the models failed**: {first_line(exc)}")
        report.save()
        return 1
    for key in (k for k in SECTIONS if k in wanted):
        try:
            SECTIONS[key](run)
        except Exception as exc:  # a bug in one section's own code: keep the others
            traceback.print_exception(exc, limit=-4)
            t = report.table(f"{key}: failed", ["section", "error"])
            report.add(t, [key, first_line(exc)])
        run.free()
    report.footer.append(
        f"_Whole run: {budget.used():.0f} s of a {args.time_budget:.0f} s budget._"
    )
    report.save()
    print(f"[gpu] done in {budget.used():.0f} s" + (f"; wrote {args.out}" if args.out else ""))
    return 0


def _load(
    args: argparse.Namespace, settings: Settings, report: Report, budget: Budget, device: Any
) -> Run:
    """Build (or reuse) the models, load them through `Enhancer`, warm every model up."""
    import random_models as models
    from suites import _warm_up, load_models

    from sdenhance import Enhancer

    cache = models.cache_root(args.cache)
    if args.model:
        model, controlnet, built = args.model, args.controlnet, None
        dtype = "fp16" if device.type == "cuda" else "fp32" if settings.quick else "auto"
    elif settings.quick:
        model, controlnet, built = models.ensure("tiny", cache)
        dtype = "fp16" if device.type == "cuda" else "fp32"
    else:  # saved in fp16 (half the files, half the loading), cast to the run's dtype
        model, controlnet, built = models.ensure("real", cache, device=str(device), dtype="fp16")
        dtype = "fp16" if device.type == "cuda" else "auto"
    print(f"[gpu] models ready ({built or 0:.0f} s to build); loading", flush=True)
    t0 = time.perf_counter()
    enhancer = Enhancer(
        str(model), controlnet=str(controlnet), device=str(device), dtype=dtype, seed=0
    )
    _warm_up(load_models(enhancer))
    run = Run(settings, report, budget, enhancer, device)
    report.intro.append(
        ("The models given, " if args.model else "Random-weight models of the real architectures, ")
        + "loaded through `Enhancer` (the real loader and inference code): timings and memory "
        "are real"
        + ("." if args.model else ", images are not meaningful.")
        + " Every measurement is one row; a row that failed or did not fit the time budget "
        "says so."
    )
    described = (
        f"`{model}` with `{controlnet}`"
        if args.model
        else "tiny test models (--quick)"
        if settings.quick
        else "real-size SD 1.5 random weights: UNet 860M, its ControlNet, VAE, CLIP-L"
    )
    report.machine = machine_rows(run, described, built, time.perf_counter() - t0)
    report.save()
    return run


def process_start() -> float:
    """When this process started (the budget includes interpreter and library start-up)."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:
        return time.time()


if __name__ == "__main__":
    sys.exit(main(started=process_start()))
