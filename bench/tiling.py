"""Merged against shifted tile grids (`--tiling`): evaluated area per step and seams.

    python bench/tiling.py                          # 768×512, updates bench/RESULTS.md
    python bench/tiling.py --sizes 768x512,1024x768 --seeds 0,1
    python bench/tiling.py --quick --results -      # tiny models, print only

Bench 2 (`suites.grid`) takes `area_table` for its shifted-grid table (pure arithmetic). The
seam table runs `Enhancer.upscale` on the real-size random SD 1.5 models (`random_models`)
with each grid, the settings of bench 3 (a chelsea photo ×2, 10 steps × creativity 0.3,
guidance 6, resemblance 0.6, tile 512, overlap 64, Lanczos pre-upscale), and measures
`naive.seam_ratio` on each result: the merged grid on its blend zones (the overlaps ±2 px, as
bench 3), the shifted grid on the border lines of its last step (±2 px) and on those of every
step. Its section of RESULTS.md sits between `<!-- tiling -->` markers, which `bench/run.py`
keeps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
SECTION = "tiling"


def area_table(sizes, tile: int = 512, overlap: int = 64) -> tuple[str, str]:
    """Per output size: tiles and evaluated area per step of both grids (a table and a note)."""
    from harness import table

    from sdenhance.stages import tile_upscale as tu

    rows = []
    for w, h in sizes:
        common = dict(width=w, height=h, tile=tile, overlap=overlap)
        merged = tu.plan((w, h), tu.Options(**common)).tiles
        shifted = tu.plan((w, h), tu.Options(**common, tiling="shifted")).tiles
        canvas = max(t.x1 for t in shifted) * max(t.y1 for t in shifted) * 64
        px = [sum(t.width * t.height for t in g) * 64 for g in (merged, shifted)]
        sizes_px = sorted({f"{t.width * 8}×{t.height * 8}" for t in shifted}, reverse=True)
        rows.append(
            [
                f"{w}×{h}",
                len(merged),
                px[0] / (w * h),
                len(shifted),
                " / ".join(sizes_px),
                px[1] / (w * h),
                px[1] / canvas,
                px[1] / px[0],
            ]
        )
    header = [
        "output",
        "merged tiles / step",
        "merged evaluated px / image px",
        "shifted tiles / step",
        "shifted tile px",
        "shifted evaluated px / image px",
        "shifted evaluated px / canvas px",
        "shifted / merged evaluated px",
    ]
    note = (
        "`--tiling shifted`: the canvas (the image padded to a multiple of 8 px) in the fewest "
        f"tiles of at most {tile} px with no overlap, lengths differing by at most one latent cell "
        "(8 px), rolled by a new offset every step; the evaluated area per step is the canvas "
        "exactly (above the image only by the padding to 8 px). Counted by `tile_upscale.plan`, "
        "like the merged grid's columns, which repeat the table above."
    )
    return table(header, rows), note


def _line_mask(positions, size: int, pad: int = 2) -> np.ndarray:
    """True within `pad` px of each border line (a line at p lies between pixels p-1 and p)."""
    mask = np.zeros(size, bool)
    for p in positions:
        if 0 < p < size:
            mask[max(0, p - pad) : min(size, p + pad)] = True
    return mask


def shifted_zones(plan, seed: int, steps) -> tuple[np.ndarray, np.ndarray]:
    """Column and row masks of the border lines of the shifted grid at each of `steps`."""
    from sdenhance.ops import shifted_tiles as st

    w, h = plan.size_out
    cw, ch = max(t.x1 for t in plan.tiles), max(t.y1 for t in plan.tiles)
    xs, ys = set(), set()
    for i in steps:
        dx, dy = st.step_offsets(i, seed, plan.tiles)
        xs |= {((t.x0 + dx) % cw) * 8 for t in plan.tiles}
        ys |= {((t.y0 + dy) % ch) * 8 for t in plan.tiles}
    return _line_mask(xs, w), _line_mask(ys, h)


def merged_zones(plan) -> tuple[np.ndarray, np.ndarray]:
    from naive import grid_spans, transition_mask

    w, h = plan.size_out
    boxes = [(t.x0 * 8, t.y0 * 8, min(t.x1 * 8, w), min(t.y1 * 8, h)) for t in plan.tiles]
    xs, ys = grid_spans(boxes)
    return transition_mask(xs, w, None), transition_mask(ys, h, None)


def seam_rows(enh: Any, b: Any, size: tuple[int, int], seed: int) -> list[list[Any]]:
    """Upscale one photo to `size` with each grid; a row per (grid, seam zones)."""
    from harness import stopwatch
    from naive import seam_ratio
    from suites import _as_float, photo

    from sdenhance.stages import tile_upscale as tu
    from sdenhance.upscalers import upscale as upscalers

    img = photo((size[0] // 2, size[1] // 2))
    pre = _as_float(upscalers.upscale(img, size=size, upscaler="lanczos"))
    out: dict[str, Any] = {}
    for mode in ("merged", "shifted"):
        values = b.stage_options(tiling=mode, seed=seed)
        plan = tu.plan(img.size, tu.Options(**{k: v for k, v in values.items() if k != "seed"}))
        with stopwatch() as sw:
            image = _as_float(enh.upscale(img, **values))
        out[mode] = (plan, image, sw["seconds"], sw["cpu"])
    plan_m, plan_s = out["merged"][0], out["shifted"][0]
    steps = range(plan_s.denoise_steps)
    zones = {
        "merged: overlaps ±2 px": merged_zones(plan_m),
        "shifted: last step's borders ±2 px": shifted_zones(plan_s, seed, steps[-1:]),
        "shifted: every step's borders ±2 px": shifted_zones(plan_s, seed, steps),
    }
    rows = []
    for mode, (plan, image, wall, cpu) in out.items():
        for zone, masks in zones.items():
            if not zone.startswith(mode):
                continue
            rows.append(
                [
                    f"{size[0]}×{size[1]}",
                    seed,
                    mode,
                    f"{len(plan.tiles)} × {plan.tiles[0].width * 8}×{plan.tiles[0].height * 8}",
                    zone.split(": ", 1)[1],
                    seam_ratio(image, *masks),
                    seam_ratio(out["shifted" if mode == "merged" else "merged"][1], *masks),
                    seam_ratio(pre, *masks),
                    wall,
                    cpu,
                ]
            )
    return rows


def stand_in_table(seeds=range(4), tile: int = 40, overlap: int = 16) -> tuple[str, str]:
    """Seams on the stand-in denoiser of tests/test_tile_upscale.py (a fixed 5×5 convolution
    + tanh, zero padding at tile edges, 3 steps of x − 0.3·prediction) on its 128×64 canvas."""
    sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
    try:
        from test_shifted_tiling import fixed_no_overlap, max_jump
        from test_tile_upscale import (
            STEPS,
            StandInScheduler,
            gradient_canvas,
            run_tiled,
            run_untiled,
            stand_in_predict,
        )
    finally:
        sys.path.pop(0)
    from harness import table

    from sdenhance.diffusion.shifted_denoise import shifted_denoise
    from sdenhance.ops import shifted_tiles, tiling

    lat = gradient_canvas()
    untiled = run_untiled(lat)
    parts = shifted_tiles.partition(128, 64, tile, tile)
    merged = tiling.tile_grid(128, 64, tile, tile, overlap)
    cells = f"{parts[0].width}×{parts[0].height}-cell tiles"
    runs = [
        ("untiled", untiled),
        (
            f"merged ({merged[0].width}×{merged[0].height}-cell tiles, overlap {overlap})",
            run_tiled(lat, merged, overlap),
        ),
        (f"fixed grid, no overlap ({cells})", fixed_no_overlap(lat, parts)),
    ]
    for seed in seeds:
        out = shifted_denoise(
            lat, StandInScheduler(), list(range(STEPS)), parts, stand_in_predict, seed=seed
        )
        runs.append((f"shifted ({cells}), seed {seed}", out))
    base = max_jump(untiled)
    f = 2 * STEPS
    rows = [
        [
            name,
            f"{max_jump(x):.4f}",
            max_jump(x) / base,
            f"{float((x - untiled)[..., f:-f, f:-f].abs().max()):.4f}",
        ]
        for name, x in runs
    ]
    header = [
        "stand-in run",
        "largest neighbour step",
        "/ untiled's",
        "largest abs. difference from untiled",
    ]
    note = (
        "The stand-in denoiser of the seam tests (tests/test_tile_upscale.py: a fixed 5×5 "
        "convolution + tanh with zero padding at tile edges, three steps of x − 0.3·prediction, "
        "a 128×64 gradient canvas), the canvas's outer 6 cells left out of both measures. Its "
        "steps never shrink, so whatever a step's borders leave stays: the worst case for a grid "
        "without overlap, where some border is always fresh."
    )
    return table(header, rows), note


def seam_section(b: Any, sizes, seeds):
    from harness import Section, table
    from suites import _loaded_enhancer

    enh = _loaded_enhancer(b)[0]
    rows = [r for size in sizes for seed in seeds for r in seam_rows(enh, b, size, seed)]
    s = Section(SECTION, "2b. Merged against shifted tile grids: seams")
    header = [
        "output",
        "seed",
        "tiling",
        "tiles / step",
        "seam zones",
        "seam ratio",
        "the other grid's result, same zones",
        "pre-upscale, same zones",
        "wall s",
        "CPU s",
    ]
    s.tables.append(table(header, rows))
    stand_in, stand_in_note = stand_in_table()
    s.tables.append(stand_in)
    s.notes.append(
        f"`Enhancer.upscale` of a chelsea photo ×2 with `--tiling merged` and `--tiling shifted`, "
        f"the models of bench 3 (device {b.device}, {b.dtype}), steps {b.steps} × creativity "
        f"{b.creativity}, guidance {b.guidance}, resemblance {b.resemblance}, tile {b.tile}, "
        f"overlap {b.overlap}, Lanczos pre-upscale, colour fix on. *Seam ratio* as in bench 3 "
        "(`naive.seam_ratio`: mean |neighbour difference| in the zones over the same mean "
        "elsewhere; 1.00: no trace of the grid). The merged grid's zones are its overlaps; the "
        "shifted grid's are its border lines, those of the last step (the only ones no later "
        "step denoised over) or of every step. The next two columns measure the other grid's "
        "result and the pre-upscale on the same zones: what the picture alone gives there. With "
        "random weights the generated detail is noise-like: this shows how the joins of "
        "independently predicted tiles show, not how real detail would match."
    )
    s.notes.append(stand_in_note)
    return s


def main(argv: list[str] | None = None) -> int:
    import argparse

    import random_models as models
    from harness import load_average, splice_section
    from run import resolve_device_dtype
    from suites import Bench

    p = argparse.ArgumentParser(prog="bench/tiling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="768x512", help="output sizes, e.g. 768x512,1024x768")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0,1")
    p.add_argument("--quick", action="store_true", help="tiny models and sizes")
    p.add_argument("--cache", default=None, help="model cache (default /tmp/sdenhance-bench)")
    p.add_argument("--results", default=None, help="file to update, or - to print only")
    args = p.parse_args(argv)
    cache = models.cache_root(args.cache)
    device, dtype = resolve_device_dtype("auto", "auto")
    kind = "tiny" if args.quick else "real"
    model, cn, _ = models.ensure(kind, cache)
    kw = dict(model=str(model), controlnet=str(cn), tiny_model="", tiny_controlnet="")
    kw.update(device=device, dtype=dtype)
    b = Bench.quick_sizes(**kw) if args.quick else Bench(quick=False, **kw)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [(192, 128)]
    t0, before = time.perf_counter(), load_average()
    s = seam_section(b, sizes, [int(v) for v in args.seeds.split(",")])
    s.seconds = time.perf_counter() - t0
    s.load = f"{before} before, {load_average()} after"
    text = s.markdown()
    print(text)
    results = args.results or ("-" if args.quick else str(BENCH_DIR / "RESULTS.md"))
    if results != "-":
        path = Path(results)
        old = path.read_text() if path.exists() else ""
        path.write_text(splice_section(old, SECTION, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
