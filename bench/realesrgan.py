"""Real-ESRGAN on the CPU (ncnn): time and memory per output megapixel, ncnn options, growth.

    python bench/realesrgan.py                  # prints the tables, updates bench/RESULTS.md
    python bench/realesrgan.py --quick --results -
    python bench/run.py --only realesrgan       # the same, as one of run.py's suites

Every bundled model (the registry's ncnn entries) on a real photo (scikit-image's astronaut):
1. seconds and work memory per output megapixel at ×2, ×3 and ×4, on 1 and 2 threads, through
   `upscalers.upscale` (a ×4 model at ×2 runs ×4 and shrinks; the x2/x3 models run exactly);
2. each ncnn option that could speed the CPU path up, on x4plus and animevideov3-x4: seconds,
   memory and the largest difference from float32 direct convolution (the reference);
3. the memory check of `sdenhance upscale IN --creativity 0 --scale 4`: `Enhancer.upscale` in a
   fresh process per case, peak RSS growth from a 128² to a 512² input per output megapixel.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from harness import PeakRSS, Section, load_average, rss_mb, table  # noqa: E402

SECTION = "realesrgan"
TITLE = "Real-ESRGAN on the CPU: every bundled model, scale, thread count and ncnn option"
TARGET_MIB_PER_MP = 20.0
MIB_PER_MP_FLOAT_RGB = 1e6 * 12 / 2**20

# (label, overrides of sdenhance.upscalers.ncnn.NCNN_OPTIONS)
OPTION_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("defaults (fp32; packing, winograd, sgemm, lightmode on)", {}),
    ("fp32 direct convolution (the reference)", {"use_winograd_convolution": False,
                                                 "use_sgemm_convolution": False}),
    ("bf16 storage", {"use_bf16_storage": True}),
    ("bf16 storage + packed", {"use_bf16_storage": True, "use_bf16_packed": True}),
    ("fp16 storage + packed + arithmetic (ncnn's own default)",
     {"use_fp16_storage": True, "use_fp16_packed": True, "use_fp16_arithmetic": True}),
    ("no packing layout", {"use_packing_layout": False}),
    ("no winograd", {"use_winograd_convolution": False}),
    ("no sgemm", {"use_sgemm_convolution": False}),
    ("no winograd 6×3 (4×3 and 2×3 only)", {"use_winograd63_convolution": False}),
    ("lightmode off", {"lightmode": False}),
    ("OpenMP block time 0", {"openmp_blocktime": 0}),
)  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    """Input sides and the cases of one run (the quick one only checks the tables appear)."""

    models: tuple[str, ...]
    scales: tuple[int, ...] = (2, 3, 4)
    threads: tuple[int, ...] = (1, 2)
    speed_input: int = 96  # one tile
    growth_input: int = 160  # 2 × 2 tiles of 96 px (`fit_tile`): the same activations
    check_inputs: tuple[int, int] = (128, 512)
    option_models: tuple[str, ...] = ("realesrgan-x4plus", "realesr-animevideov3-x4")
    option_input: int = 64


def sizes(quick: bool) -> Sizes:
    from sdenhance.upscalers.registry import REGISTRY

    if quick:
        one = ("realesr-animevideov3-x4",)
        return Sizes(one, (2, 4), (1,), 32, 48, (32, 64), one, 32)  # 48²: 2 × 2 tiles of 32
    return Sizes(tuple(i.name for i in REGISTRY if i.kind == "ncnn"))


def photo(side: int):
    """A `side`² crop of a real photo (scikit-image's 512² astronaut), from its centre."""
    from PIL import Image
    from skimage import data

    img = data.astronaut()
    y = max(0, (img.shape[0] - side) // 2)
    x = max(0, (img.shape[1] - side) // 2)
    return Image.fromarray(np.ascontiguousarray(img[y : y + side, x : x + side]))


def grid(side: int, name: str) -> str:
    """The tiles `upscalers.upscale` runs on a `side`² input with model `name`."""
    from sdenhance.ops.tiling import fit_tile, spans
    from sdenhance.upscalers.registry import REGISTRY

    info = REGISTRY.get(name)
    overlap = min(info.overlap, info.tile // 4)
    n = len(spans(side, fit_tile(side, info.tile, overlap), overlap)) if side > info.tile else 1
    t = fit_tile(side, info.tile, overlap) if side > info.tile else side
    return f"{n} × {n} of {t} px"


def same_tiles(a: int, b: int, name: str) -> str:
    """How the tiles of two input sizes compare, for the notes."""
    if grid(a, name).split(" of ")[1] == grid(b, name).split(" of ")[1]:
        return "the same tile size, so the growth is the image buffers, not the activations"
    return "tiles of different sizes, so the growth includes the activations' difference"


def _trim() -> None:
    """Hand freed heap back to the kernel, so an RSS baseline is what is really in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(fn, *args: Any, **kw: Any) -> tuple[float, float, float, Any]:
    """(wall s, CPU s, work peak MiB, result) of `fn(*args, **kw)`; the peak-RSS mark is reset
    just before, once freed heap is handed back."""
    _trim()
    before = rss_mb()
    with PeakRSS() as peak:
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args, **kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, peak.mb - before, result


# --- 1. every model, scale and thread count --------------------------------------------------


def scales_table(z: Sizes) -> tuple[str, list[str]]:
    from sdenhance.upscalers.registry import REGISTRY
    from sdenhance.upscalers.upscale import upscale

    rows = []
    small = photo(z.speed_input)
    families = sorted({i.family for i in REGISTRY if i.family and i.name in z.models})
    for name in (*z.models, *families):
        for scale in z.scales:
            mp = (z.speed_input * scale) ** 2 / 1e6
            for threads in z.threads:
                if threads != max(z.threads):  # timed here, once the net is loaded
                    upscale(photo(16), scale, upscaler=name, threads=threads)
                    wall, cpu, _, _ = measure(upscale, small, scale, upscaler=name, threads=threads)
                    rows.append(
                        [f"`{name}`", f"×{scale}", threads, wall, cpu, wall / mp, None, None]
                    )
                    continue
                case = {"model": name, "scale": scale, "threads": threads}
                a = _run_child({**case, "side": z.speed_input})
                b = _run_child({**case, "side": z.growth_input})
                growth = (b["work"] - a["work"]) / ((z.growth_input * scale) ** 2 / 1e6 - mp)
                rows.append(
                    [f"`{name}`", f"×{scale}", threads, a["seconds"], a["cpu"], a["seconds"] / mp,
                     a["work"], growth]
                )  # fmt: skip
    head = [
        "model",
        "scale",
        "threads",
        f"seconds ({z.speed_input}² input)",
        "CPU s",
        "s per output MP",
        f"work peak MiB ({z.speed_input}²)",
        f"growth MiB per output MP ({z.speed_input}² → {z.growth_input}²)",
    ]
    first = z.models[0]
    notes = [
        f"Input: {z.speed_input}² and {z.growth_input}² crops of a photo through "
        f"`upscalers.upscale` (tiles {grid(z.speed_input, first)}, then "
        f"{grid(z.growth_input, first)}: {same_tiles(z.speed_input, z.growth_input, first)}), "
        "after the net is loaded; one run each. On the larger thread count each size runs in a "
        "fresh process (as in the check above), which gives the work peak (the peak RSS of the "
        "upscale above the RSS before it: mostly ncnn's activations for one tile) and the "
        "growth; the smaller thread count is timed in this process. A ×4 model asked for ×2 or ×3 runs its "
        "×4 pass and shrinks, so it costs the ×4's seconds; `realesr-animevideov3` (the family "
        "name) runs its x2 or x3 member there: the models trained for those factors, but no "
        "faster, as the bundled x2 and x3 nets also compute at ×4 and end in a ×0.5 or ×0.75 "
        "resize (their `.param`). There is no bundled ×2 or ×3 photo model: "
        "`realesrgan-x4plus` at ×2 costs its ×4 (bundled models are never swapped across "
        "families). At these small sizes the growth column is mostly how far the heap drifts "
        "over the first tiles (about 85 MiB for the x4plus models from one tile to four, "
        "whatever the scale), not buffers per megapixel: the check above, with 25 tiles, gives "
        "the slope."
    ]
    return table(head, rows), notes


# --- 2. ncnn options ----------------------------------------------------------------------


def options_table(z: Sizes) -> tuple[str, list[str]]:
    from sdenhance.upscalers import ncnn

    arr = np.asarray(photo(z.option_input), np.float32) / 255.0
    rows = []
    for name in z.option_models:
        ref = ncnn.ncnn_runner(name, 1, tuple(OPTION_CASES[1][1].items()))(arr.copy())
        for threads in z.threads:
            base = None
            for label, over in OPTION_CASES:
                ncnn._ncnn_net.cache_clear()
                _trim()
                fn = ncnn.ncnn_runner(name, threads, tuple(over.items()))
                fn(arr[:16, :16].copy())  # first run: one-off set-up
                wall, _, work, out = measure(fn, arr.copy())
                base = wall if base is None else base
                diff = float(np.abs(out - ref).max()) * 255
                rows.append(
                    [f"`{name}`", threads, label, wall, base / wall, work, diff,
                     "yes" if diff <= 1.0 else "**no**"]
                )  # fmt: skip
    ncnn._ncnn_net.cache_clear()
    head = [
        "model",
        "threads",
        "ncnn options",
        f"seconds ({z.option_input}² tile)",
        "speed vs defaults",
        "work peak MiB",
        "max abs diff from fp32 direct (/255)",
        "within 1/255",
    ]
    notes = [
        f"One {z.option_input}² crop of a photo through `ncnn_runner` (one tile), each option on "
        "top of sdenhance's defaults (`upscalers.ncnn.NCNN_OPTIONS`), after a first run on a "
        "16² tile; one run each, so differences of a few per cent are noise on this shared "
        "machine; the work peak is measured in this process, a rougher figure than a fresh "
        "process gives. Defaults keep only what stays within 1/255 of float32 direct convolution: "
        "bf16 storage is faster and lighter but moves x4plus's output by several levels; fp16 "
        "storage and arithmetic, ncnn's own defaults, change nothing on an x86 CPU (ncnn has no "
        "fp16 path there) but would compute in fp16 on ARM, so sdenhance turns them off to give "
        "the same output on every CPU. `tests/test_upscaler_ncnn_options.py` checks the "
        "defaults against the reference on a photo."
    ]
    return table(head, rows), notes


# --- 3. the memory check (fresh process per case) -------------------------------------------


def child(case: dict[str, Any]) -> dict[str, Any]:
    """One upscale in this fresh process, its net loaded first: `Enhancer.upscale(creativity=0)`
    (what the CLI runs), or `upscalers.upscale` on `threads` threads when the case says."""
    from PIL import Image

    from sdenhance import Enhancer
    from sdenhance.upscalers.upscale import upscale

    img = photo(case["side"])
    if "threads" in case:
        kw = dict(upscaler=case["model"], threads=case["threads"])
        run = functools.partial(upscale, scale=case["scale"], **kw)
    else:
        enh = Enhancer(None, device="cpu", dtype="fp32", seed=0)
        kw = dict(scale=case["scale"], creativity=0.0, upscaler=case["model"])
        run = functools.partial(enh.upscale, **kw)
    run(Image.new("RGB", (16, 16)))  # loads the net
    loaded = rss_mb()
    wall, cpu, work, _ = measure(run, img)
    return {"loaded": loaded, "work": work, "seconds": wall, "cpu": cpu}


def _run_child(case: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def growth_table(z: Sizes) -> tuple[str, list[str], list[tuple[str, str, bool]]]:
    from sdenhance.upscalers.registry import REGISTRY

    rows, worst = [], 0.0
    a, b = z.check_inputs
    for name in z.models:
        small = _run_child({"model": name, "side": a, "scale": 4})
        large = _run_child({"model": name, "side": b, "scale": 4})
        d_mp = ((4 * b) ** 2 - (4 * a) ** 2) / 1e6
        slope = (large["work"] - small["work"]) / d_mp
        worst = max(worst, slope)
        rows.append(
            [f"`{name}`", REGISTRY.get(name).tile, small["loaded"], small["work"],
             large["work"], large["seconds"], slope, slope / MIB_PER_MP_FLOAT_RGB,
             "met" if slope <= TARGET_MIB_PER_MP else "**not met**"]
        )  # fmt: skip
    head = [
        "model",
        "tile bound px",
        "RSS with the net loaded MiB",
        f"work peak {a}² ×4 MiB",
        f"work peak {b}² ×4 MiB",
        f"seconds {b}² ×4",
        "growth MiB per output MP",
        "= float32 RGB output buffers",
        f"≤ {TARGET_MIB_PER_MP:.0f} MiB per MP",
    ]
    notes = [
        f"`Enhancer.upscale(img, scale=4, creativity=0, upscaler=model)` (what `sdenhance "
        f"upscale IN --creativity 0 --scale 4` runs) on {a}² and {b}² crops of a photo, each in "
        "a fresh process after a 16² warm-up has loaded the net, on every usable core; *growth* "
        f"= (work peak at {b}² − at {a}²) / ({4 * b}² − {4 * a}² output pixels). Both inputs run "
        f"tiles {grid(a, z.models[0])}, then {grid(b, z.models[0])}: "
        f"{same_tiles(a, b, z.models[0])}. The activations of one tile (nearly all of the work "
        "peak at the small size) are a constant bounded by the model's tile bound; the growth "
        "is the image buffers: the 8-bit output "
        "(PIL's, 3.8 MiB per MP), the float32 band that one row of tiles is blended into "
        "(which grows with the width only) and what the allocator keeps around them. Tiles "
        "never exceed the bound; on sizes where `fit_tile` shortens them, the activations are "
        "smaller still."
    ]
    verdict = (
        f"peak RSS growth per output MP, {a}² → {b}² ×4, creativity 0, every bundled model "
        f"(target ≤ {TARGET_MIB_PER_MP:.0f} MiB)",
        f"{worst:.1f} MiB per MP at most",
        worst <= TARGET_MIB_PER_MP,
    )
    return table(head, rows), notes, [verdict]


# --- the section ----------------------------------------------------------------------------


class MarkedSection(Section):
    """A section between `<!-- realesrgan -->` markers, so this script alone can update it."""

    def markdown(self) -> str:
        return f"<!-- {SECTION} -->\n{super().markdown().rstrip()}\n<!-- /{SECTION} -->\n"


def section(quick: bool = False) -> MarkedSection:
    z = sizes(quick)
    s = MarkedSection(SECTION, TITLE)
    for part in (growth_table, scales_table, options_table):
        tab, notes, *verdicts = part(z)
        s.tables.append(tab)
        s.notes += notes
        s.verdicts += verdicts[0] if verdicts else []
    return s


def realesrgan(b: Any) -> Section:
    """The suite of `bench/run.py` (its `Bench` only says whether the run is quick)."""
    return section(b.quick)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from harness import splice_section

    p = argparse.ArgumentParser(prog="bench/realesrgan.py", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one compact model, tiny sizes")
    p.add_argument("--results", default=None, help="file to update, or - to print only")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    results = args.results or ("-" if args.quick else str(BENCH_DIR / "RESULTS.md"))
    t0, before = time.perf_counter(), load_average()
    s = section(args.quick)
    s.seconds = time.perf_counter() - t0
    s.load = f"{before} before, {load_average()} after"
    rows = [[t, m, "met" if ok else "**not met**"] for t, m, ok in s.verdicts]
    s.tables.insert(0, table(["target", "measured", ""], rows))
    text = s.markdown()
    print(text)
    if results != "-":
        path = Path(results)
        old = path.read_text() if path.exists() else ""
        inner = text.split("\n", 1)[1].rsplit(f"<!-- /{SECTION} -->", 1)[0]
        path.write_text(splice_section(old, SECTION, inner))
    return 0


if __name__ == "__main__":
    sys.exit(main())
