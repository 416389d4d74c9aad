"""Bench 9: ours against the naive per-tile baseline at three output sizes, exact and `--fast`.

The compared upscale of bench 3 (same models, sampler, steps × creativity, guidance, seed,
Lanczos pre-upscale) at 768×512, 1024×768 and 1536×1536 output, each ×2 from a photo of half
the size: `Enhancer.upscale` with its defaults (the default `--tiling`), the same with
`fast=True`, and the naive per-tile script of bench 3 (one ControlNet img2img pipeline call per
512-px tile, cross-faded). Wall and CPU time of the upscale call only (models loaded and warm).
"""

from __future__ import annotations

from typing import Any

from harness import Section, fmt, stopwatch, table
from naive import feathered_paste, naive_tiles

SIZES = ((768, 512), (1024, 768), (1536, 1536))
QUICK_SIZES = ((128, 96), (192, 128))


def _time(call) -> tuple[float, float, Any]:
    with stopwatch() as sw:
        out = call()
    return sw["seconds"], sw["cpu"], out


def sizes(b: Any) -> Section:
    from suites import _as_float, _loaded_enhancer, photo

    from sdenhance.stages import tile_upscale as tu
    from sdenhance.upscalers import upscale as upscalers

    enh = b.shared.get("ours", {}).get("enhancer") or _loaded_enhancer(b)[0]
    engine = enh.engine
    rows = []
    for w, h in QUICK_SIZES if b.quick else SIZES:
        img = photo((w // 2, h // 2))
        values = b.stage_options()
        opts = tu.Options(**values)
        work = tu.plan(img.size, opts, engine.family_resolution)
        exact_wall, exact_cpu, _ = _time(lambda img=img, v=values: enh.upscale(img, **v))
        fast_wall, fast_cpu, _ = _time(lambda img=img, v=values: enh.upscale(img, **v, fast=True))
        pre = _as_float(upscalers.upscale(img, size=(w, h), upscaler="lanczos"))

        def baseline(pre=pre, opts=opts, w=w, h=h):
            tiles, boxes = naive_tiles(engine, pre, opts, 0, tile=b.tile, overlap=b.overlap)
            return feathered_paste(tiles, boxes, w, h, None), len(boxes)

        naive_wall, naive_cpu, (_, naive_count) = _time(baseline)
        rows.append(
            [
                f"{w}×{h}",
                f"{len(work.tiles)} / {naive_count}",
                exact_wall,
                fast_wall,
                naive_wall,
                fmt(exact_wall / naive_wall),
                fmt(fast_wall / naive_wall),
                fmt(exact_cpu / naive_cpu),
                fmt(fast_cpu / naive_cpu),
            ]
        )
    s = Section("sizes", "9. Ours against the naive baseline at three sizes, exact and `--fast`")
    s.tables.append(
        table(
            [
                "output",
                "tiles: ours / naive",
                "ours s",
                "ours `--fast` s",
                "naive s",
                "ours / naive wall",
                "`--fast` / naive wall",
                "ours / naive CPU",
                "`--fast` / naive CPU",
            ],
            rows,
        )
    )
    s.notes.append(
        f"Each output ×{b.scale:g} from a photo of half its size; steps {b.steps} × creativity "
        f"{b.creativity}, guidance {b.guidance}, resemblance {b.resemblance}, tile {b.tile}, "
        f"overlap {b.overlap}, seed 0, Lanczos pre-upscale (bench 3's settings). *Ours*: "
        "`Enhancer.upscale` with its defaults (the default `--tiling`); *`--fast`*: the same with "
        "`fast=True` (bench 8 says which modes that turns on); *naive*: bench 3's per-tile "
        "pipeline calls (no colour fix). Single runs after bench 1's warm-up; CPU time is the "
        "process's, steadier than wall time on a shared machine."
    )
    return s
