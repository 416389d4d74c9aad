"""Measuring tools shared by the benchmarks: model timers, peak memory, machine facts, tables."""

from __future__ import annotations

import functools
import os
import platform
import re
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# timing


def _sync(device: Any) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it."""
    if getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


_MISSING = object()


class ModelTimer:
    """Seconds spent inside chosen model methods, wrapped on the instances from outside.

    `wrap(module, "forward", "unet")` replaces the bound method on that one instance (the
    class and every other instance stay untouched); `restore()` puts the originals back.
    Nested calls are counted once, by the outermost timed call.
    """

    def __init__(self, device: Any = "cpu") -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.samples: dict[str, int] = defaultdict(int)  # batch rows of the first tensor argument
        self._depth = 0
        self._wrapped: list[tuple[Any, str]] = []

    def wrap(self, obj: Any, method: str, label: str) -> None:
        original = getattr(obj, method)
        own = vars(obj).get(method, _MISSING) if hasattr(obj, "__dict__") else _MISSING

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return original(*args, **kwargs)
            self._depth += 1
            _sync(self.device)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                _sync(self.device)
                self.seconds[label] += time.perf_counter() - t0
                self.calls[label] += 1
                shape = getattr(args[0], "shape", None) if args else None
                self.samples[label] += int(shape[0]) if shape else 0
                self._depth -= 1

        setattr(obj, method, timed)
        self._wrapped.append((obj, method, own))

    def restore(self) -> None:
        """Put back what was there: the object's own attribute, or none (the class's shows again)."""
        for obj, method, own in reversed(self._wrapped):
            if own is _MISSING:
                delattr(obj, method)
            else:
                setattr(obj, method, own)
        self._wrapped.clear()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.samples.clear()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def wrap_engine(timer: ModelTimer, engine: Any) -> None:
    """Time UNet, ControlNet, VAE encode/decode and the text encoder of a loaded engine."""
    base = engine.base
    timer.wrap(base.unet, "forward", "UNet")
    timer.wrap(engine.controlnet, "forward", "ControlNet")
    timer.wrap(base.vae, "encode", "VAE encode")
    timer.wrap(base.vae, "decode", "VAE decode")
    timer.wrap(base.text_encoder, "forward", "text encoder")


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """Wall seconds (`seconds`) and this process's CPU seconds (`cpu`) of a block."""
    out: dict[str, float] = {}
    t0, c0 = time.perf_counter(), cpu_seconds()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0
        out["cpu"] = cpu_seconds() - c0


def best_of(fn: Callable[[], Any], repeats: int, device: Any = "cpu") -> float:
    """Smallest wall time of `repeats` calls (the least disturbed by other load on the machine)."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------------------------------------
# memory


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class PeakRSS:
    """Peak resident memory of this process over a stretch of work.

    On Linux the kernel's high-water mark is reset at the start (`/proc/self/clear_refs` 5) and
    read at the end (VmHWM, the same figure as `getrusage` ru_maxrss), so every short spike
    counts. Elsewhere a thread samples psutil every 10 ms.
    """

    def __init__(self) -> None:
        self.exact = False
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.exact = True
        except OSError:
            self._peak = rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, rss_mb())

    def __exit__(self, *exc: Any) -> None:
        if self.exact:
            self._peak = _vm_hwm_mb()
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self._peak = max(self._peak, rss_mb())

    @property
    def mb(self) -> float:
        return self._peak


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# the machine


def load_average() -> str:
    try:
        return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def machine(device: Any, dtype: Any) -> list[tuple[str, str]]:
    """(field, value) rows: CPU, cores, RAM, GPU, library versions, chosen device and dtype."""
    import diffusers
    import psutil
    import torch

    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in (
                    "",
                    platform.machine(),
                    platform.processor(),
                ):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    rows = [
        ("CPU", f"{cpu}" + (f" ({', '.join(isa)})" if isa else "")),
        (
            "cores (usable)",
            str(
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            ),
        ),
        ("torch threads", str(torch.get_num_threads())),
        ("RAM", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"),
        ("torch / diffusers", f"{torch.__version__} / {diffusers.__version__}"),
        ("device / dtype used", f"{device} / {str(dtype).replace('torch.', '')}"),
        ("load average at start (1/5/15 min)", load_average()),
    ]
    return rows


# ---------------------------------------------------------------------------------------------
# reporting


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; numbers right-aligned."""
    cells = [[fmt(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) if rows else False
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


@dataclass
class Section:
    """One benchmark's report: a title, tables, notes and target verdicts."""

    key: str
    title: str
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, bool | None]] = field(
        default_factory=list
    )  # target, measured, met
    seconds: float = 0.0
    load: str = ""  # load average before → after, filled in by the runner

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        for t in self.tables:
            parts += [t, ""]
        for n in self.notes:
            parts += [n, ""]
        parts.append(
            f"_Benchmark wall time: {self.seconds:.0f} s; load average (1/5/15 min) {self.load}._"
        )
        return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# sections of RESULTS.md that other scripts write


def splice_section(old: str, name: str, markdown: str) -> str:
    """`old` with `markdown` between ``<!-- name -->`` markers, replacing an older copy there
    (appended when there is none): a script that measures one thing updates its own part."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        return head + block + rest.split(end, 1)[1].lstrip("\n")
    return old.rstrip("\n") + ("\n\n" if old.strip() else "") + block


def marked_sections(text: str) -> dict[str, str]:
    """The ``<!-- name -->`` ... ``<!-- /name -->`` blocks of `text`, by name, markers left out."""
    found = {}
    for match in re.finditer(r"<!-- ([\w-]+) -->\n(.*?)\n<!-- /\1 -->", text, flags=re.S):
        found[match.group(1)] = match.group(2)
    return found
