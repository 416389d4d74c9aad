"""Sections 3 to 6 of bench/gpu.py: whole upscales through `Enhancer.upscale`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gpu_steps import sync
from harness import PeakRSS, rss_mb
from naive import feathered_paste, naive_tiles
from suites import _fit, photo

MIB = 2**20


# ---------------------------------------------------------------------------------------------
# whole upscales through `Enhancer.upscale`


def upscale_options(run: Any, **over: Any) -> dict[str, Any]:
    s = run.settings
    values = dict(
        width=s.big_output,
        height=s.big_output,
        prompt=s.prompt,
        steps=s.steps,
        creativity=s.creativity,
        tile=s.tile,
        overlap=s.overlap,
        upscaler="lanczos",
    )
    values.update(over)
    return values


def timed_upscale(run: Any, image: Any, **options: Any) -> dict[str, Any]:
    """One `Enhancer.upscale`: wall time, time per denoising step (progress events, synchronised)
    and peak memory: VRAM above what was allocated before (the weights), and host RSS."""
    import torch

    enh = run.enhancer
    events: list[tuple[str, float]] = []

    def progress(label: str, done: int, total: int) -> None:
        sync(run.device)
        events.append((label, time.perf_counter()))

    run.free()
    base = 0
    if run.cuda:
        torch.cuda.reset_peak_memory_stats(run.device)
        base = torch.cuda.memory_allocated(run.device)
    loaded = rss_mb()
    enh.progress = progress
    try:
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            out = enh.upscale(image, **options)
            sync(run.device)
            wall = time.perf_counter() - t0
    finally:
        enh.progress = None
    steps = [at for label, at in events if label.startswith("denoise")]
    return {
        "wall": wall,
        "per_step": (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else math.nan,
        "vram": (torch.cuda.max_memory_allocated(run.device) - base) / MIB if run.cuda else None,
        "reserved": torch.cuda.max_memory_reserved(run.device) / MIB if run.cuda else None,
        "rss": peak.mb - loaded,
        "record": dict(enh.last_record),
        "size": out.size,
    }


def plan_of(run: Any, size_in: tuple[int, int], options: dict[str, Any]) -> Any:
    from sdenhance.stages import tile_upscale as tu

    return tu.plan(size_in, tu.Options(**options), run.engine.family_resolution)


def tile_desc(work: Any) -> str:
    tl = work.tiles[0]
    return f"{len(work.tiles)} × {tl.width * 8}×{tl.height * 8}"


def tile_batch(run: Any) -> None:
    s = run.settings
    image = photo((s.big_input, s.big_input))
    t = run.report.table(
        f"3. `--tile-batch` on a {s.big_output}² upscale",
        [
            "tile batch",
            "samples per model call",
            "wall s",
            "s per denoising step",
            "peak VRAM above weights MiB",
            "step speed vs batch 1",
        ],
    )
    work = plan_of(run, image.size, upscale_options(run))
    results = run.shared.setdefault("tile_batch", {})

    def one(batch: int) -> list[Any]:
        r = timed_upscale(run, image, **upscale_options(run, tile_batch=batch))
        results[batch] = r
        ref = results[1]["per_step"] if 1 in results else math.nan
        return [
            min(batch, len(work.tiles)) * 2,
            r["wall"],
            r["per_step"],
            r["vram"],
            ref / r["per_step"],
        ]

    for batch in s.tile_batches:
        done = [r["wall"] for r in results.values()]
        run.measure(t, str(batch), lambda b=batch: one(b), need=1.5 * max(done, default=40))
    run.report.note(
        t,
        f"`Enhancer.upscale` of a {s.big_input}² photo to {s.big_output}² ({work.describe()}; "
        f"tile {s.tile or 512}, overlap {s.overlap}, guidance 6: 2 samples per tile), Lanczos "
        "pre-upscale, wavelet colour fix. *s per denoising step*: between the first and the last "
        "step's progress events, the GPU synchronised at each; wall time includes the VAE, the "
        "pre-upscale and the colour fix. Peak VRAM: `max_memory_allocated` above the weights.",
    )


def naive(run: Any) -> None:
    from sdenhance.io.convert import to_array
    from sdenhance.stages import tile_upscale as tu
    from sdenhance.upscalers import upscale as upscalers

    s = run.settings
    image = photo((s.big_input, s.big_input))
    options = upscale_options(run)
    t = run.report.table(
        f"4. Ours against the naive per-tile baseline at {s.big_output}²",
        ["method", "tiles", "wall s", "peak VRAM above weights MiB", "ours / naive wall"],
    )
    work = plan_of(run, image.size, options)
    ours = run.shared.get("tile_batch", {}).get(4)

    def ours_row() -> list[Any]:
        nonlocal ours
        ours = ours or timed_upscale(run, image, **options)
        return [tile_desc(work), ours["wall"], ours["vram"], 1.0]

    def naive_row() -> list[Any]:
        import torch

        opts = tu.Options(**options)
        tile = s.tile or run.engine.family_resolution
        run.free()
        if run.cuda:
            torch.cuda.reset_peak_memory_stats(run.device)
        base = torch.cuda.memory_allocated(run.device) if run.cuda else 0
        t0 = time.perf_counter()
        size = (s.big_output, s.big_output)
        pre = to_array(upscalers.upscale(image, size=size, upscaler="lanczos"))
        tiles, boxes = naive_tiles(run.engine, pre, opts, 0, tile=tile, overlap=s.overlap)
        feathered_paste(tiles, boxes, *size)
        sync(run.device)
        wall = time.perf_counter() - t0
        vram = (torch.cuda.max_memory_allocated(run.device) - base) / MIB if run.cuda else None
        w = boxes[0][2] - boxes[0][0]
        h = boxes[0][3] - boxes[0][1]
        ratio = ours["wall"] / wall if ours else None
        return [f"{len(boxes)} × {w}×{h}", wall, vram, ratio]

    run.measure(t, "ours (`Enhancer.upscale`, tile batch 4)", ours_row, need=60)
    run.measure(
        t,
        "naive: one ControlNet img2img pipeline call per tile",
        naive_row,
        need=3 * (ours["wall"] if ours else 40),
    )
    run.report.note(
        t,
        "Same photo, models, sampler (DPM++ 2M Karras), steps × creativity "
        f"({s.steps} × {s.creativity}), guidance, conditioning scale and seed; both include the "
        "Lanczos pre-upscale. Naive: `naive.naive_tiles`, each tile its own prompt encoding, VAE "
        "encode, denoising (batch 2: the CFG pair) and VAE decode, pasted with a cross-fade. Ours "
        "is section 3's tile-batch-4 run when it ran.",
    )


def vram(run: Any) -> None:
    s = run.settings
    steps, creativity = s.one_step
    t = run.report.table(
        "5. Peak memory per output megapixel (one denoising step)",
        [
            "output",
            "MP",
            "tiles",
            "wall s",
            "peak VRAM above weights MiB",
            "peak VRAM reserved MiB",
            "peak host RSS above loaded MiB",
        ],
    )
    points: list[tuple[float, float]] = []
    host: list[tuple[float, float]] = []
    last = [(0.26, 10.0)]  # (MP, seconds) of the last row, to size the next row's need

    def one(side: int) -> list[Any]:
        image = photo((side // 2, side // 2))
        options = upscale_options(run, width=side, height=side, steps=steps, creativity=creativity)
        r = timed_upscale(run, image, **options)
        mp = side * side / 1e6
        last.append((mp, r["wall"]))
        if r["vram"] is not None:
            points.append((mp, r["vram"]))
        host.append((mp, r["rss"]))
        work = plan_of(run, image.size, options)
        return [mp, tile_desc(work), r["wall"], r["vram"], r["reserved"], r["rss"]]

    for side in s.vram_sides:
        mp = side * side / 1e6
        need = 5 + 1.5 * last[-1][1] * mp / last[-1][0]
        run.measure(t, f"{side}²", lambda sd=side: one(sd), need=need)
    fits = []
    if len(points) > 1:
        fits.append(f"VRAM {_fit(points):.1f} MiB per output MP")
    if len(host) > 1:
        fits.append(f"host RSS {_fit(host):.0f} MiB per output MP")
    run.report.note(
        t,
        f"`Enhancer.upscale` from half the side, steps {steps} × creativity {creativity} (one "
        "denoising step: the peak does not depend on the step count), tile batch 4. Least-squares "
        f"slopes: {', '.join(fits) or 'need two rows'}. The GPU holds the weights, one tile "
        "batch's activations and one VAE tile; the image buffers stay in host memory.",
    )


# ---------------------------------------------------------------------------------------------
# the out-of-memory step-down


class _Retries(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "out of memory" in record.getMessage():
            self.messages.append(record.getMessage())


@contextmanager
def memory_limit(run: Any, extra_mib: float) -> Iterator[str]:
    """CUDA: cap this process at what it holds now (the weights, caches emptied) plus
    `extra_mib`. CPU (smoke runs): the UNet raises `torch.OutOfMemoryError` for calls above
    `extra_mib` samples instead."""
    import torch

    run.free()
    if run.cuda:
        total = torch.cuda.get_device_properties(run.device).total_memory
        cap = torch.cuda.memory_reserved(run.device) + extra_mib * MIB  # weights, caches emptied
        torch.cuda.set_per_process_memory_fraction(cap / total, run.device)
        try:
            yield f"{cap / 2**30:.2f} GiB ({cap / total:.4f} of {total / 2**30:.0f} GiB)"
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, run.device)
            run.free()
        return
    unet = run.engine.base.unet
    forward = unet.forward

    def limited(sample: Any, *args: Any, **kwargs: Any) -> Any:
        if sample.shape[0] > extra_mib:
            raise torch.OutOfMemoryError("simulated: out of memory")
        return forward(sample, *args, **kwargs)

    unet.forward = limited
    try:
        yield f"simulated: UNet calls above {extra_mib:.0f} samples fail"
    finally:
        del unet.forward


def oom(run: Any) -> None:
    from sdenhance.errors import SdenhanceError

    s = run.settings
    steps, creativity = s.one_step
    image = photo((s.big_input, s.big_input))
    t = run.report.table(
        f"6. Out-of-memory step-down, {s.big_output}² upscale under a forced limit",
        [
            "case",
            "limit",
            "headroom above the weights MiB",
            "retries",
            "settled on",
            "wall s",
            "outcome",
        ],
    )
    peaks = {b: r["vram"] for b, r in run.shared.get("tile_batch", {}).items()}

    def peak(batch: int) -> float:
        if peaks.get(batch) is None:
            options = upscale_options(run, tile_batch=batch, steps=steps, creativity=creativity)
            peaks[batch] = timed_upscale(run, image, **options)["vram"]
        return peaks[batch]

    def one(extra: float) -> list[Any]:
        catch = _Retries()
        logging.getLogger("sdenhance").addHandler(catch)
        t0 = time.perf_counter()
        try:
            with memory_limit(run, extra) as limit:
                try:
                    r = timed_upscale(
                        run, image, **upscale_options(run, steps=steps, creativity=creativity)
                    )
                    fell = r["record"].get("memory_fallback")
                    settled = (
                        "no step-down (tile batch 4)"
                        if not fell
                        else f"tile batch {fell['tile_batch']}, tile {fell['tile'] or 512}, "
                        f"VAE tile {fell['vae_tile']}"
                    )
                    outcome = "ok"
                except SdenhanceError as exc:
                    settled, outcome = "–", f"SdenhanceError: {exc}"
        finally:
            logging.getLogger("sdenhance").removeHandler(catch)
        return [
            limit,
            extra if run.cuda else None,
            len(catch.messages),
            settled,
            time.perf_counter() - t0,
            outcome,
        ]

    if run.cuda:
        p1, p4 = peak(1), peak(4)
        if p4 > 1.15 * p1:
            run.measure(
                t, "between the peaks of tile batch 1 and 4", lambda: one((p1 + p4) / 2), need=60
            )
        else:
            run.report.add(
                t,
                [
                    "between the peaks of tile batch 1 and 4",
                    f"skipped: peaks {p1:.0f} and {p4:.0f} MiB are too close",
                ],
            )
        run.measure(t, "below the peak of tile batch 1", lambda: one(0.6 * p1), need=90)
        run.report.note(
            t,
            f"Peaks without a limit (section 3, else measured here): tile batch 1 {p1:.0f} MiB, "
            f"tile batch 4 {p4:.0f} MiB above the weights; these runs: steps {steps} × "
            f"creativity {creativity}. "
            "`torch.cuda.set_per_process_memory_fraction` caps the process at the weights plus "
            "the limit; the stage halves the tile batch, then the tile (down to 256 px, VAE tile "
            "256) on each out-of-memory error, and gives up with one `error:` line after that.",
        )
        return
    run.measure(t, "tile batch 4 does not fit, 1 does", lambda: one(2))
    run.measure(t, "nothing fits", lambda: one(0))
    run.report.note(t, "CPU smoke run: out-of-memory errors are simulated in the UNet call.")
