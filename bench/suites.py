"""The benchmarks. Each takes the run's `Bench` settings and returns a `Section` (tables + notes)."""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fast_modes import fast_modes
from harness import ModelTimer, PeakRSS, Section, best_of, rss_mb, stopwatch, table, wrap_engine
from naive import feathered_paste, grid_spans, naive_grid, naive_tiles, seam_ratio, transition_mask
from realesrgan import realesrgan
from sizes import sizes
from tiling import area_table

BENCH_DIR = Path(__file__).resolve().parent
MIB_PER_MP_FLOAT_RGB = 12e6 / 2**20  # one (H, W, 3) float32 buffer per output megapixel


@dataclass
class Bench:
    """What every benchmark needs: model folders, device, dtype and the sizes of this run."""

    quick: bool
    model: str  # the pipeline folder of the timed runs (real-size models, or tiny in quick mode)
    controlnet: str
    tiny_model: str
    tiny_controlnet: str
    device: str
    dtype: str  # fp32 | bf16 | fp16 (resolved once, so every process uses the same)
    # the compared upscale (bench 1 and 3)
    compare_input: tuple[int, int] = (384, 256)
    scale: float = 2.0
    steps: int = 10
    creativity: float = 0.3
    memory_creativity: float = 0.1
    guidance: float = 6.0
    resemblance: float = 0.6
    tile: int = 512
    overlap: int = 64
    usdu_feather: int = 16
    prompt: str = "a photo of a cat, detailed fur"
    # bench 2
    grid_sizes: tuple[tuple[int, int], ...] = (
        (512, 512),
        (1000, 750),
        (1536, 1536),
        (2048, 1152),
        (4096, 4096),
    )
    # bench 4: (input side, scale) per case
    memory_tiny: tuple[tuple[int, int], ...] = (
        (256, 2),
        (256, 4),
        (512, 2),
        (512, 4),
        (1024, 2),
        (1024, 4),
    )
    memory_esrgan: tuple[tuple[str, int, int], ...] = (
        ("realesr-animevideov3-x4", 256, 4),
        ("realesr-animevideov3-x4", 512, 4),
        ("realesr-animevideov3-x4", 1024, 4),
        ("realesrgan-x4plus", 256, 4),
        ("realesrgan-x4plus", 512, 4),
    )
    # bench 5
    esrgan_input: int = 128
    esrgan_runs: tuple[tuple[str, int], ...] = (
        ("realesrgan-x4plus", 1),
        ("realesrgan-x4plus", 2),
        ("realesr-animevideov3-x4", 1),
        ("realesr-animevideov3-x4", 2),
    )
    esrgan_repeats: int = 2
    # bench 6
    precision_latent: int = 64
    precision_repeats: int = 2
    # bench 7
    batch_images: int = 4
    batch_size: tuple[int, int] = (128, 96)
    # results shared between benchmarks (the compared upscale runs once for bench 1 and 3)
    shared: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick_sizes(cls, **kw: Any) -> Bench:
        return cls(
            quick=True,
            compare_input=(64, 48),
            tile=96,
            overlap=16,
            creativity=0.1,
            grid_sizes=((512, 512), (1000, 750)),
            memory_tiny=((64, 2),),
            memory_esrgan=(("realesr-animevideov3-x4", 32, 4),),
            esrgan_input=32,
            esrgan_runs=(("realesr-animevideov3-x4", 1), ("realesr-animevideov3-x4", 2)),
            esrgan_repeats=1,
            precision_latent=16,
            precision_repeats=1,
            batch_images=2,
            batch_size=(64, 48),
            **kw,
        )

    def stage_options(self, **over: Any) -> dict[str, Any]:
        values = dict(
            scale=self.scale,
            prompt=self.prompt,
            creativity=self.creativity,
            steps=self.steps,
            guidance=self.guidance,
            resemblance=self.resemblance,
            tile=self.tile,
            overlap=self.overlap,
            upscaler="lanczos",
        )
        values.update(over)
        return values


def photo(size: tuple[int, int]):
    """A real photo (scikit-image's chelsea) resized to `size`."""
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.chelsea()).convert("RGB").resize(size, Image.Resampling.LANCZOS)


def _as_float(img) -> np.ndarray:
    return np.asarray(img.convert("RGB"), np.float32) / 255.0


# ---------------------------------------------------------------------------------------------
# 1. overhead (and the run bench 3 compares)


def load_models(enh: Any) -> Any:
    """Load what the upscale stage uses (base pipeline, ControlNet, its derived pipeline) now."""
    engine = enh.engine
    _ = engine.base, engine.controlnet
    engine.controlnet_img2img(None)  # the stage encodes its prompt with this one
    return engine


def _warm_up(engine: Any) -> None:
    """One small call of every model: library start-up (thread pools, kernels) is not timed."""
    import torch

    dev, dt = engine.device, engine.dtype
    base = engine.base
    cross = base.unet.config.cross_attention_dim
    x = torch.zeros(2, 4, 8, 8, device=dev, dtype=dt)
    emb = torch.zeros(2, 77, cross, device=dev, dtype=dt)
    with torch.no_grad():
        base.text_encoder(torch.zeros(1, 77, dtype=torch.long, device=dev))
        down, mid = engine.controlnet(
            x,
            500,
            encoder_hidden_states=emb,
            controlnet_cond=torch.zeros(2, 3, 64, 64, device=dev, dtype=dt),
            return_dict=False,
        )
        base.unet(
            x,
            500,
            encoder_hidden_states=emb,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        )
        base.vae.decode(
            base.vae.encode(torch.zeros(1, 3, 64, 64, device=dev, dtype=dt)).latent_dist.mode()
        )


def _loaded_enhancer(b: Bench):
    from sdenhance import Enhancer

    enh = Enhancer(b.model, controlnet=b.controlnet, device=b.device, dtype=b.dtype, seed=0)
    with stopwatch() as sw:
        engine = load_models(enh)
        engine.controlnet_img2img()  # the baseline's pipeline (shares every component)
    with stopwatch() as warm:
        _warm_up(engine)
    return enh, sw["seconds"], engine.load_seconds, warm["seconds"]


def run_ours(b: Bench) -> dict[str, Any]:
    """The compared upscale through `Enhancer.upscale`, with model time split out."""
    if "ours" in b.shared:
        return b.shared["ours"]
    from sdenhance.stages import tile_upscale as tu
    from sdenhance.upscalers import upscale as upscalers

    enh, load_s, load_models_s, warm_s = _loaded_enhancer(b)
    engine = enh.engine
    timer = ModelTimer(engine.device)
    wrap_engine(timer, engine)
    timer.wrap(upscalers, "upscale", "pre-upscale")
    img = photo(b.compare_input)
    values = b.stage_options()
    work = tu.plan(img.size, tu.Options(**values), engine.family_resolution)
    loaded = rss_mb()
    try:
        with PeakRSS() as peak, stopwatch() as sw:
            out = enh.upscale(img, **values)
    finally:
        timer.restore()
    b.shared["ours"] = res = {
        "enhancer": enh,
        "load": load_s,
        "load_models": load_models_s,
        "warm": warm_s,
        "wall": sw["seconds"],
        "cpu": sw["cpu"],
        "loaded_mib": loaded,
        "peak_mib": peak.mb,
        "seconds": dict(timer.seconds),
        "calls": dict(timer.calls),
        "samples": dict(timer.samples),
        "plan": work,
        "image": _as_float(out),
        "input": img,
    }
    return res


COMPONENTS = ("UNet", "ControlNet", "VAE encode", "VAE decode", "text encoder", "pre-upscale")


def overhead(b: Bench) -> Section:
    r = run_ours(b)
    wall = r["wall"]
    s = Section("overhead", "1. Orchestration overhead")
    rows = []
    for name in COMPONENTS:
        sec = r["seconds"].get(name, 0.0)
        rows.append(
            [
                name,
                r["calls"].get(name, 0),
                r["samples"].get(name, 0) if name != "pre-upscale" else None,
                sec,
                100 * sec / wall,
            ]
        )
    orch = wall - sum(r["seconds"].values())
    rows.append(["**orchestration** (everything else)", None, None, orch, 100 * orch / wall])
    rows.append(["**total `Enhancer.upscale`**", None, None, wall, 100.0])
    rows.append(
        ["(CPU time of the process over the same call, both threads)", None, None, r["cpu"], None]
    )
    s.tables.append(table(["part", "calls", "batch rows", "seconds", "% of wall"], rows))
    s.tables.append(
        table(
            ["model load (not in the total)", "seconds"],
            [
                [
                    "`Enhancer` first use: resolve, load UNet/VAE/CLIP/ControlNet, derive pipelines",
                    r["load"],
                ],
                ["of which `from_pretrained` (engine.load_seconds)", r["load_models"]],
                [
                    "warm-up: one small call of each model (library start-up kept out of the timings)",
                    r["warm"],
                ],
            ],
        )
    )
    s.notes.append(
        "Load times are with the model files in the OS page cache (the folders are reused between "
        "runs); weights are memory-mapped, so part of reading them lands in the first model calls "
        "(the warm-up)."
    )
    w, h = r["input"].size
    s.notes.append(
        f"One `Enhancer.upscale` of a {w}×{h} photo ×{b.scale:g} ({r['plan'].describe()}), "
        f"steps {b.steps} × creativity {b.creativity} → {r['plan'].denoise_steps} denoising step(s), "
        f"guidance {b.guidance} (CFG: 2 batch rows per tile), tile {b.tile}, overlap {b.overlap}, "
        "pre-upscaler `lanczos` (Real-ESRGAN's cost is bench 5's). Each model method is wrapped on "
        "its instance with a timer; *orchestration* is the wall time minus all of them: option "
        "checks, planning, tensor crops and merges, the scheduler, colour fix, image conversions."
    )
    share = 100 * orch / wall
    s.verdicts.append(("orchestration < 5 % of `upscale` wall time", f"{share:.2f} %", share < 5))
    return s


# ---------------------------------------------------------------------------------------------
# 2. grid waste (pure)


def evaluated_px(w: int, h: int, tile: int, overlap: int) -> tuple[int, int]:
    """Tile pixels evaluated per step by our grid and by the naive grid, at output size w×h."""
    from sdenhance.stages import tile_upscale as tu

    p = tu.plan((w, h), tu.Options(width=w, height=h, tile=tile, overlap=overlap))
    ours = sum(t.width * t.height for t in p.tiles) * 64
    naive = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in naive_grid(w, h, tile, overlap))
    return ours, naive


def grid(b: Bench) -> Section:
    from sdenhance.stages import tile_upscale as tu

    s = Section("grid", "2. Tile-grid waste (pure arithmetic, tile 512, overlap 64)")
    rows = []
    tile, overlap = 512, 64
    for w, h in b.grid_sizes:
        opts = tu.Options(width=w, height=h, tile=tile, overlap=overlap, creativity=0.35, steps=20)
        p = tu.plan((w, h), opts)
        n = len(p.tiles)
        minimum = math.ceil(w / tile) * math.ceil(h / tile)
        ours_px = sum(t.width * t.height for t in p.tiles) * 64
        naive = naive_grid(w, h, tile, overlap)
        naive_px = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in naive)
        t0 = p.tiles[0]
        rows.append(
            [
                f"{w}×{h}",
                n,
                minimum,
                f"{t0.width * 8}×{t0.height * 8}",
                n / minimum,
                ours_px / (w * h),
                len(naive),
                naive_px / (w * h),
                ours_px / naive_px,
            ]
        )
    s.tables.append(
        table(
            [
                "output",
                "our tiles / step",
                "min ⌈W/t⌉·⌈H/t⌉",
                "our tile px",
                "tiles / min",
                "our evaluated px / image px",
                "naive tiles",
                "naive evaluated px / image px",
                "ours / naive evaluated px",
            ],
            rows,
        )
    )
    s.notes.append(
        "`tile_upscale.plan` per output size: model evaluations per denoising step (one tile = one "
        "UNet+ControlNet evaluation, the CFG pair counted once) against the no-overlap minimum, and "
        "the pixel area the model evaluates per step (tile area summed, overlaps counted twice) "
        "against the image area. *Naive* is a per-tile script's grid: 512-px tiles stepping by "
        "448 px, the last one moved back to the edge. Tile counts match (both need ⌈(W−o)/(t−o)⌉ "
        "per axis to keep every overlap ≥ 64); `fit_tile` then shrinks our tiles to just cover the "
        "axis, so the last column evaluates no extra pixels. The last column is the model work of "
        "our denoising relative to the naive grid's (the VAE work follows the same grid)."
    )
    shifted_table, shifted_note = area_table(b.grid_sizes, tile, overlap)  # `--tiling shifted`
    s.tables.append(shifted_table)
    s.notes.append(shifted_note)
    return s


# ---------------------------------------------------------------------------------------------
# 3. naive baseline


def naive(b: Bench) -> Section:
    from sdenhance.stages import tile_upscale as tu
    from sdenhance.upscalers import upscale as upscalers

    ours = run_ours(b)
    enh = ours["enhancer"]
    engine = enh.engine
    opts = tu.Options(**b.stage_options())
    img = ours["input"]
    size = tu.target_size(img.size, opts)
    pre = _as_float(upscalers.upscale(img, size=size, upscaler="lanczos"))
    pipe = engine.controlnet_img2img(opts.scheduler)
    shared = (
        pipe.unet is engine.base.unet
        and pipe.vae is engine.base.vae
        and pipe.controlnet is engine.controlnet
    )
    timer = ModelTimer(engine.device)
    wrap_engine(timer, engine)
    try:
        with stopwatch() as sw:
            tiles, boxes = naive_tiles(engine, pre, opts, 0, tile=b.tile, overlap=b.overlap)
            full = feathered_paste(tiles, boxes, size[0], size[1], None)
    finally:
        timer.restore()
    usdu = feathered_paste(tiles, boxes, size[0], size[1], b.usdu_feather)
    w, h = size

    # seams: each result on its own grid's blend zones; the pre-upscale on both as a reference
    nx, ny = grid_spans(boxes)
    ours_boxes = [
        (t.x0 * 8, t.y0 * 8, min(t.x1 * 8, w), min(t.y1 * 8, h)) for t in ours["plan"].tiles
    ]
    ox, oy = grid_spans(ours_boxes)
    zones = {
        "ours": (transition_mask(ox, w, None), transition_mask(oy, h, None)),
        "naive": (transition_mask(nx, w, None), transition_mask(ny, h, None)),
        "usdu": (transition_mask(nx, w, b.usdu_feather), transition_mask(ny, h, b.usdu_feather)),
    }

    def seam(image: np.ndarray, zone: str) -> float:
        return seam_ratio(image, *zones[zone])

    def row(
        label: str,
        r: dict[str, Any],
        wall: float,
        cpu: float,
        image: np.ndarray,
        zone: str,
        tiles_desc: str,
    ) -> list[Any]:
        sec = r["seconds"]
        model = sum(sec.get(k, 0.0) for k in COMPONENTS[:5])
        return [
            label,
            tiles_desc,
            wall,
            cpu,
            sec.get("UNet", 0.0) + sec.get("ControlNet", 0.0),
            sec.get("VAE encode", 0.0) + sec.get("VAE decode", 0.0),
            sec.get("text encoder", 0.0),
            wall - model,
            r["samples"].get("UNet", 0),
            " / ".join(
                str(r["calls"].get(k, 0))
                for k in ("UNet", "text encoder", "VAE encode", "VAE decode")
            ),
            seam(image, zone),
            seam(pre, zone),
        ]

    ours_desc = f"{len(ours['plan'].tiles)} × {ours_boxes[0][2] - ours_boxes[0][0]}×{ours_boxes[0][3] - ours_boxes[0][1]}"
    naive_desc = f"{len(boxes)} × {boxes[0][2] - boxes[0][0]}×{boxes[0][3] - boxes[0][1]}"
    naive_r = {
        "seconds": dict(timer.seconds),
        "samples": dict(timer.samples),
        "calls": dict(timer.calls),
    }
    rows = [
        row(
            "ours (`Enhancer.upscale`)",
            ours,
            ours["wall"],
            ours["cpu"],
            ours["image"],
            "ours",
            ours_desc,
        ),
        row(
            "naive, cross-fade over the overlap",
            naive_r,
            sw["seconds"],
            sw["cpu"],
            full,
            "naive",
            naive_desc,
        ),
        row(
            f"naive, {b.usdu_feather}-px cut mid-overlap (USDU-like)",
            naive_r,
            sw["seconds"],
            sw["cpu"],
            usdu,
            "usdu",
            naive_desc,
        ),
    ]
    s = Section("naive", "3. Against the naive per-tile baseline")
    s.tables.append(
        table(
            [
                "method",
                "tiles",
                "wall s",
                "CPU s",
                "UNet+ControlNet s",
                "VAE s",
                "text enc. s",
                "other s",
                "UNet batch rows",
                "calls: UNet / text enc. / VAE enc. / VAE dec.",
                "seam ratio",
                "seam ratio of the pre-upscale (same zones)",
            ],
            rows,
        )
    )
    ratio = ours["wall"] / sw["seconds"]
    cpu_ratio = ours["cpu"] / max(sw["cpu"], 1e-9)
    model_ratio = sum(ours["seconds"].get(k, 0.0) for k in COMPONENTS[:5]) / max(
        sum(naive_r["seconds"].values()), 1e-9
    )
    s.notes.append(
        f"Same {img.size[0]}×{img.size[1]} photo → {w}×{h}, same models (one engine, components shared: "
        f"{'yes' if shared else 'NO'}), sampler `{opts.scheduler}`, steps {b.steps} × strength "
        f"{b.creativity} (= {tu.plan(img.size, opts).denoise_steps} denoising step(s) in both), guidance {b.guidance}, "
        f"conditioning scale {b.resemblance}, seed 0, both from the same Lanczos pre-upscale. "
        f"*Naive*: every {b.tile}-px tile (overlap ≥ {b.overlap}) is one "
        "`StableDiffusionControlNetImg2ImgPipeline` call from `engine.controlnet_img2img()` with the "
        "tile as image and as ControlNet-tile condition: its own prompt encoding, VAE encode, "
        "denoising and VAE decode; the decoded tiles are pasted with a linear cross-fade over the "
        f"whole overlap, or (same tiles, no extra model time) with a {b.usdu_feather}-px cross-fade "
        "centred in the overlap, which is how Ultimate SD Upscale pastes (mask blur 8). No colour fix "
        "for the baseline (per-tile scripts have none); ours includes its colour fix."
    )
    s.notes.append(
        "*Seam ratio*: mean |difference between neighbouring pixels| inside the zones where two "
        "tiles were blended (columns for horizontal differences, rows for vertical ones, ±2 px), "
        "divided by the same mean everywhere else, on the final image (8-px frame left out). "
        "1.00: the grid leaves no trace. Above 1: a step or line at the seam. Below 1: a band "
        "where two tiles that disagree were averaged (ghosting, lost texture). The last column is "
        "the same measure on the pre-upscaled input, i.e. what the picture itself gives on those "
        "zones. With random weights the generated detail is noise-like, so this measures only how "
        "independent per-tile generation shows at the joins, not how real detail would match."
    )
    ours_px = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in ours_boxes)
    naive_px = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
    s.notes.append(
        f"Time ratio ours/naive: **{ratio:.2f}** wall, {cpu_ratio:.2f} CPU time, {model_ratio:.2f} "
        "model time (wall time inside the model calls). CPU time is the steadier of the two on a "
        "shared machine: other processes stretch wall time, not this process's CPU seconds. The grids "
        f"predict {ours_px / naive_px:.2f}: ours evaluates {ours_px / naive_px:.0%} of the naive "
        f"grid's tile pixels per step ({len(ours['plan'].tiles)} tiles shrunk by `fit_tile` against "
        f"{len(boxes)} full {b.tile}-px tiles), and the VAE works on the same grids. On a CPU, "
        "batching tiles (ours: all tiles in one call) buys little, so the time follows the "
        "evaluated area; what the baseline repeats per tile besides (prompt encoding, pipeline "
        "set-up) is small next to the models. Where the grids differ more, so does the time: see "
        "the last column of bench 2 ("
        + ", ".join(
            f"{w}×{h}: {o / n:.2f}"
            for w, h in b.grid_sizes
            for o, n in [evaluated_px(w, h, b.tile, b.overlap)]
        )
        + ")."
    )
    s.verdicts.append(
        (
            "ours / naive wall time ≤ 0.7",
            f"{ratio:.2f} wall, {cpu_ratio:.2f} CPU",
            (ratio <= 0.7) if (ratio <= 0.7) == (cpu_ratio <= 0.7) else None,
        )
    )
    return s


# ---------------------------------------------------------------------------------------------
# 4. memory (fresh subprocess per case)


def memory_child(case: dict[str, Any]) -> dict[str, Any]:
    """Run one upscale in this (fresh) process; peak RSS of the work, models already loaded."""
    import torch
    from PIL import Image

    from sdenhance import Enhancer
    from sdenhance.upscalers import upscale as upscalers

    w, h = (case["size"], case["size"]) if isinstance(case["size"], int) else case["size"]
    img = photo((w, h))
    creativity = case["creativity"]
    enh = Enhancer(
        case.get("model"),
        controlnet=case.get("controlnet"),
        device=case["device"],
        dtype=case["dtype"],
        seed=0,
    )
    if creativity > 0:
        load_models(enh)
    upscalers.upscale(Image.new("RGB", (16, 16)), 4, upscaler=case["upscaler"])  # loads an ncnn net
    gc.collect()
    cuda = torch.cuda.is_available() and case["device"] != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    loaded = rss_mb()
    t0 = time.perf_counter()
    with PeakRSS() as peak:
        out = enh.upscale(
            img,
            scale=case["scale"],
            creativity=creativity,
            steps=case["steps"],
            guidance=6.0,
            upscaler=case["upscaler"],
            tile=case.get("tile"),
            overlap=case.get("overlap", 64),
        )
    return {
        "out": list(out.size),
        "loaded_mib": loaded,
        "peak_mib": peak.mb,
        "exact": peak.exact,
        "seconds": time.perf_counter() - t0,
        "gpu_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }


def _child(case: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH_DIR / "run.py"), "--child-memory", json.dumps(case)]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tiles_desc(case: dict[str, Any]) -> str:
    """The tile grids a memory case runs (they set the model-dependent part of the peak)."""
    from sdenhance.ops import tiling

    w, h = (case["size"], case["size"]) if isinstance(case["size"], int) else case["size"]
    if case["creativity"] == 0:
        from sdenhance.upscalers.registry import REGISTRY

        info = REGISTRY.get(case["upscaler"])  # `upscalers.upscale` defaults (input px)
        tile, overlap = info.tile, min(info.overlap, info.tile // 4)
        if max(w, h) <= tile:
            return f"1 × {w}×{h}"
        tw, th = tiling.fit_tile(w, tile, overlap), tiling.fit_tile(h, tile, overlap)
        n = len(tiling.tile_grid(w, h, tw, th, overlap))
        return f"{n} × {tw}×{th}"
    from sdenhance.diffusion.tiled_vae import vae_grid
    from sdenhance.stages import tile_upscale as tu

    opts = tu.Options(
        scale=case["scale"],
        creativity=case["creativity"],
        steps=case["steps"],
        tile=case.get("tile"),
        overlap=case.get("overlap", 64),
    )
    p = tu.plan((w, h), opts)
    t = p.tiles[0]
    vae = vae_grid(*p.canvas, opts.vae_tile)
    v = vae[0]
    unet = f"UNet {len(p.tiles)} × {t.width * 8}×{t.height * 8}"
    return f"{unet}, VAE {len(vae)} × {v.width * 8}×{v.height * 8}"


def _fit(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return math.nan
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def memory(b: Bench) -> Section:
    s = Section("memory", "4. Peak memory against output size")
    common = {
        "device": b.device,
        "dtype": b.dtype,
        "steps": b.steps,
        "tile": b.tile,
        "overlap": b.overlap,
    }
    series: list[tuple[str, str, dict[str, Any]]] = []
    real_label = (
        "tiny models (quick mode), lanczos pre-upscale"
        if b.quick
        else "real-size SD 1.5 (UNet 860M, ControlNet, VAE, CLIP-L), lanczos pre-upscale"
    )
    real_case = f"{b.compare_input[0]}×{b.compare_input[1]} ×{b.scale:g}"
    if "ours" not in b.shared:
        series.append(
            (
                real_label,
                real_case,
                {
                    **common,
                    "model": b.model,
                    "controlnet": b.controlnet,
                    "size": list(b.compare_input),
                    "scale": b.scale,
                    "creativity": b.memory_creativity,
                    "upscaler": "lanczos",
                },
            )
        )
    for size, scale in b.memory_tiny:
        series.append(
            (
                "tiny diffusion models, lanczos pre-upscale",
                f"{size}² ×{scale}",
                {
                    **common,
                    "model": b.tiny_model,
                    "controlnet": b.tiny_controlnet,
                    "size": size,
                    "scale": scale,
                    "creativity": b.memory_creativity,
                    "upscaler": "lanczos",
                },
            )
        )
    for name, size, scale in b.memory_esrgan:
        series.append(
            (
                f"creativity 0: `{name}` only",
                f"{size}² ×{scale}",
                {**common, "size": size, "scale": scale, "creativity": 0.0, "upscaler": name},
            )
        )
    rows = []
    by_series: dict[str, list[tuple[float, float, str, str]]] = {}
    results = []
    if "ours" in b.shared:  # bench 1's upscale, measured the same way in this process
        o = b.shared["ours"]
        h, w = o["image"].shape[:2]
        results.append(
            (
                real_label,
                real_case + " (bench 1's run)",
                {
                    "out": [w, h],
                    "loaded_mib": o["loaded_mib"],
                    "peak_mib": o["peak_mib"],
                    "seconds": o["wall"],
                    "gpu_peak_mib": None,
                },
                {
                    **common,
                    "size": list(b.compare_input),
                    "scale": b.scale,
                    "creativity": b.creativity,
                },
            )
        )
    results += [(label, case_name, _child(case), case) for label, case_name, case in series]
    tiles_by_series: dict[str, set[str]] = {}
    for label, case_name, r, case in results:
        grid_desc = _tiles_desc(case)
        tiles_by_series.setdefault(label, set()).add(grid_desc.split(", VAE")[0].split(" × ")[-1])
        mp = r["out"][0] * r["out"][1] / 1e6
        work = r["peak_mib"] - r["loaded_mib"]
        by_series.setdefault(label, []).append(
            (mp, work, case_name, grid_desc.split(", VAE")[0].split(" × ")[-1])
        )
        rows.append(
            [
                label,
                case_name,
                f"{r['out'][0]}×{r['out'][1]}",
                grid_desc,
                mp,
                r["loaded_mib"],
                r["peak_mib"],
                work,
                work / (mp * MIB_PER_MP_FLOAT_RGB),
                r["seconds"],
            ]
            + ([r["gpu_peak_mib"]] if r["gpu_peak_mib"] is not None else [])
        )
    header = [
        "series",
        "case",
        "output",
        "tiles",
        "output MP",
        "RSS with models loaded MiB",
        "peak RSS MiB",
        "work peak MiB (peak − loaded)",
        "work peak / one float32 RGB output buffer",
        "seconds",
    ]
    if rows and len(rows[0]) > len(header):
        header.append("GPU peak MiB")
    s.tables.append(table(header, rows))

    slope_rows = []
    for label, pts in by_series.items():
        if len(pts) < 2:
            continue
        slope = _fit([(p[0], p[1]) for p in pts])
        slope_rows.append(
            [
                label,
                len(pts),
                ", ".join(sorted(tiles_by_series[label])),
                slope,
                slope / MIB_PER_MP_FLOAT_RGB,
            ]
        )
    if slope_rows:
        s.tables.append(
            table(
                [
                    "series",
                    "cases",
                    "largest tiles across the cases",
                    "MiB per output MP (fit)",
                    "= float32 RGB output buffers",
                ],
                slope_rows,
            )
        )

    # the upscaler issue's question: 4× of 256² vs 4× of 1024²
    for label, pts in by_series.items():
        small = [p for p in pts if p[2] == "256² ×4"]
        large = [p for p in pts if p[2] == "1024² ×4"]
        if small and large:
            d_mib = large[0][1] - small[0][1]
            d_buf = (large[0][0] - small[0][0]) * MIB_PER_MP_FLOAT_RGB
            s.notes.append(
                f"**4× of 256² vs 4× of 1024², {label}:** the work peak grows by {d_mib:,.0f} MiB for "
                f"{large[0][0] - small[0][0]:.1f} MP more output; one float32 RGB output buffer grows by "
                f"{d_buf:,.0f} MiB, the 8-bit output image by {d_buf / 4:,.0f} MiB: the growth is "
                f"{d_mib / d_buf:.1f} float32 output-size buffers."
            )
            tiles = f"largest tile {small[0][3]} → {large[0][3]} px"
            s.verdicts.append(
                (
                    f"peak RSS growth 4×256² → 4×1024² within the image buffers ({label})",
                    f"{d_mib / d_buf:.1f} float32 output-size buffers ({tiles})",
                    None,
                )
            )
            if not label.startswith("creativity 0"):
                continue
            s.notes.append(
                "Where that growth comes from, reading `upscalers.upscale` (creativity 0): the "
                "last model pass blends each row of tiles into one float32 band (as tall as a row "
                "of tiles, as wide as the image) and hands finished rows straight to the 8-bit "
                "image (`ops.grid_merge.blend_rows`), so no output-size float32 array exists; "
                "what grows is the 8-bit image, the band (with the width) and what the allocator "
                "keeps around them. `bench/realesrgan.py` checks the growth for every bundled "
                "model at two sizes with the same tile."
            )
    s.notes.append(
        "Each case runs `Enhancer.upscale` in a fresh Python process after its models are loaded "
        "(and the ncnn net, by a 16-px warm-up); the kernel's peak-RSS mark (VmHWM, the figure "
        "`getrusage` reports as ru_maxrss) is reset just before the upscale and read just after, so "
        "*work peak* is what the upscale itself added at its highest point, image buffers included "
        "(the input image is made before). The real-size row is bench 1's upscale, measured the same "
        "way in the main process right after loading (a child process runs it when bench 1 is not "
        f"selected). Diffusion cases: steps {b.steps} × creativity {b.memory_creativity} (one denoising "
        f"step; bench 1's run: creativity {b.creativity}), guidance {b.guidance}, tile {b.tile}, "
        f"overlap {b.overlap}, VAE tile 512."
    )
    cost = ""
    if "ours" in b.shared:
        o = b.shared["ours"]
        mp = o["image"].shape[0] * o["image"].shape[1] / 1e6
        vae = (o["seconds"].get("VAE encode", 0.0) + o["seconds"].get("VAE decode", 0.0)) / mp
        steps = max(1, o["plan"].denoise_steps)
        unet = (o["seconds"].get("UNet", 0.0) + o["seconds"].get("ControlNet", 0.0)) / mp / steps
        cost = (
            f" (in bench 1 this CPU spent {vae:.0f} s in the VAE per output megapixel and {unet:.0f} s "
            "in UNet+ControlNet per megapixel and step, so a 4096² output would take "
            f"{16.8 * (vae + unet) / 60:.0f} min for one step)"
        )
    s.notes.append(
        "Why the size series uses the tiny models: the real-size models are too slow here for "
        f"outputs beyond a megapixel{cost}. Everything that depends on the model (weights, the "
        "activations of one tile batch and of one VAE tile) is bounded by the tile and the tile "
        "batch, so it sets the level; the growth with output size is the image buffers with either "
        "model. The compact `realesr-animevideov3-x4` runs through the same tiled code as x4plus "
        "(tiles of at most 128 px, the same buffers) at a fraction of its cost (bench 5), so it takes the "
        "Real-ESRGAN series to 4096²; x4plus itself is measured at 4× of 256² and 512²."
    )
    diffusion = [r for r in slope_rows if not r[0].startswith("creativity 0")]
    if diffusion:
        s.notes.append(
            "The diffusion path keeps the pre-upscaled image (PIL and its float copy `up_arr`), the "
            "padded `canvas` (a copy even when no padding is needed) and the decoded image alive to "
            "the end, and the wavelet colour fix adds its own float copies (image, reference, two "
            "low-pass images, their difference, the clipped result) on top: hence the "
            f"{diffusion[0][4]:.1f} float32 output-size buffers per output megapixel of the fit. The "
            "model-dependent part is an offset bounded by the largest tile and tile batch (the "
            "real-size row: the UNet/ControlNet activations of one batch of tiles and one VAE tile); "
            "`fit_tile` shrinks tiles on small images, so that offset still grows a little across "
            "the smaller cases (see the tiles column) before it stops at the maximum tile."
        )
    if any(r[0] == "creativity 0: `realesrgan-x4plus` only" for r in slope_rows):
        s.notes.append(
            "x4plus's work peak is nearly all ncnn's activations for one tile (about 0.8 GiB at "
            "the 128-px bound). `fit_tile` shortens tiles where that keeps their count (see the "
            "tiles column), so a slope fitted across cases of different tile sizes mixes the "
            "activations with the buffers; the peak never exceeds the bound's activations plus "
            "the buffers, and `bench/realesrgan.py` measures the growth between sizes that run "
            "the same tile."
        )
    s.notes.append(
        "For scale: one (H, W, 3) float32 image is 11.4 MiB per megapixel, the 8-bit output "
        "2.9 MiB (PIL keeps RGB in 4 bytes per pixel: 3.8 MiB)."
    )
    return s


# ---------------------------------------------------------------------------------------------
# 5. Real-ESRGAN speed


def esrgan(b: Bench) -> Section:
    from sdenhance.upscalers import upscale as upscalers

    img = photo((b.esrgan_input, b.esrgan_input))
    rows = []
    for name, threads in b.esrgan_runs:
        upscalers.upscale(img.resize((16, 16)), 4, upscaler=name, threads=threads)  # load the net
        sec = best_of(
            lambda n=name, t=threads: upscalers.upscale(img, 4, upscaler=n, threads=t),
            b.esrgan_repeats,
        )
        mp = (4 * b.esrgan_input) ** 2 / 1e6
        rows.append(
            [f"`{name}`", threads, f"{b.esrgan_input}² → {4 * b.esrgan_input}²", sec, sec / mp]
        )
    s = Section("esrgan", "5. Real-ESRGAN on the CPU (ncnn)")
    s.tables.append(
        table(
            [
                "model",
                "threads",
                "size",
                f"seconds (best of {b.esrgan_repeats})",
                "s per output MP",
            ],
            rows,
        )
    )
    speedups = []
    for name in dict(b.esrgan_runs):
        one = [r[3] for r in rows if r[0] == f"`{name}`" and r[1] == 1]
        two = [r[3] for r in rows if r[0] == f"`{name}`" and r[1] == 2]
        if one and two:
            speedups.append(f"`{name}` {one[0] / two[0]:.2f}×")
    s.notes.append(
        f"Input: a {b.esrgan_input}² crop of a photo, ×4 (input tiles of at most 128 px, each "
        "bundled model's bound, 32-px overlap: the defaults of `upscalers.upscale`), best of "
        f"{b.esrgan_repeats} after loading the net. Speed-up of 2 threads over 1: {', '.join(speedups)}. "
        "`threads` defaults to every usable core; on a machine shared with other work, ncnn's "
        "spinning worker threads can make 2 threads slower than 1. Every model, scale and "
        "thread count: the Real-ESRGAN section (`bench/realesrgan.py`)."
    )
    return s


# ---------------------------------------------------------------------------------------------
# 6. precision


def precision(b: Bench) -> Section:
    import torch
    from diffusers import UNet2DConditionModel

    from sdenhance.models import device as eng

    device = eng.pick_device(b.device)
    n = b.precision_latent
    dtypes = [torch.float32, torch.bfloat16] + ([torch.float16] if device.type == "cuda" else [])
    rows = []
    times = {}
    for dt in dtypes:
        unet = (
            UNet2DConditionModel.from_pretrained(Path(b.model) / "unet", torch_dtype=dt)
            .to(device)
            .eval()
        )
        cross = unet.config.cross_attention_dim
        g = torch.Generator("cpu").manual_seed(0)
        x = torch.randn(2, 4, n, n, generator=g).to(device, dt)
        emb = torch.randn(2, 77, cross, generator=g).to(device, dt)
        with torch.no_grad():
            unet(
                x[:, :, : max(8, n // 2), : max(8, n // 2)], 500, encoder_hidden_states=emb
            )  # warm-up
            sec = best_of(
                lambda u=unet, x=x, e=emb: u(x, 500, encoder_hidden_states=e),
                b.precision_repeats,
                device,
            )
        times[dt] = sec
        rows.append([str(dt).replace("torch.", ""), sec, times[torch.float32] / sec])
        del unet, x, emb
        gc.collect()
    s = Section("precision", "6. Precision: one UNet forward")
    s.tables.append(
        table(
            [f"dtype (UNet forward, latent {n}×{n}, batch 2)", "seconds", "speed-up vs fp32"], rows
        )
    )
    if device.type == "cpu":
        real = times[torch.float32] / times[torch.bfloat16]
        saved = os.environ.pop(
            "SDENHANCE_CPU_DTYPE", None
        )  # the engine's own choice, not an override
        try:
            auto = eng.pick_dtype("auto", device)
        finally:
            if saved is not None:
                os.environ["SDENHANCE_CPU_DTYPE"] = saved
        auto_name = "bf16" if auto == torch.bfloat16 else "fp32"
        native = getattr(eng, "cpu_has_native_bf16", None)
        why = (
            f"the CPU {'has' if native() else 'lacks'} native bf16 (AVX512-BF16 or AMX)"
            if native
            else "the engine's timing probe"
        )
        probes = [eng.cpu_bf16_speedup.__wrapped__() for _ in range(4)]
        s.notes.append(
            f"`--dtype auto` picks **{auto_name}** on this CPU ({why}); one real UNet forward runs "
            f"{real:.2f}× faster in bf16 (best of {b.precision_repeats}, after a half-size warm-up). "
            "For comparison, four runs of the milliseconds-long conv + matmul probe "
            f"`engine.cpu_bf16_speedup()` gave {', '.join(f'{v:.2f}' for v in probes)}× in this "
            "process; on a machine shared with other work its answer moves from run to run, which is "
            "why the dtype follows the CPU's features rather than a timing."
        )
        agree = (auto == torch.bfloat16) == (real >= 1.3)
        s.verdicts.append(
            (
                "dtype auto picks bf16 exactly where the UNet runs ≥ 1.3× faster in it",
                f"auto {auto_name}, UNet bf16 speed-up {real:.2f}×",
                agree,
            )
        )
    return s


# ---------------------------------------------------------------------------------------------
# 7. batch amortisation


def batch(b: Bench) -> Section:
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="sdenhance-bench-batch-"))
    base = photo((b.batch_size[0] * 2, b.batch_size[1] * 2))
    paths = []
    for i in range(b.batch_images):
        crop = base.crop((i * 8, i * 4, i * 8 + b.batch_size[0], i * 4 + b.batch_size[1]))
        p = tmp / f"in{i}.png"
        crop.save(p)
        paths.append(str(p))
    args = [
        "--scale",
        "2",
        "--creativity",
        "0.3",
        "--steps",
        "10",
        "--upscaler",
        "lanczos",
        "--seed",
        "0",
        "--model",
        b.tiny_model,
        "--controlnet",
        b.tiny_controlnet,
        "--device",
        b.device,
        "--dtype",
        b.dtype,
        "--overwrite",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def cli(inputs: list[str], out: str) -> float:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sdenhance", "upscale", *inputs, "-o", out, *args],
            check=True,
            capture_output=True,
            env=env,
        )
        return time.perf_counter() - t0

    separate = sum(cli([p], str(tmp / f"out{i}.png")) for i, p in enumerate(paths))
    together = cli(paths, str(tmp / "outs") + "/")
    n = b.batch_images
    Image.open(tmp / "outs" / "in0_upscale.png").verify()
    s = Section("batch", "7. Batch amortisation")
    s.tables.append(
        table(
            ["how", "processes", "total s", "s per image"],
            [
                [f"{n} separate `sdenhance upscale` runs", n, separate, separate / n],
                [f"one `sdenhance upscale` run with {n} inputs", 1, together, together / n],
            ],
        )
    )
    s.notes.append(
        f"{n} photos of {b.batch_size[0]}×{b.batch_size[1]}, ×2, creativity 0.3, 10 steps, lanczos "
        "pre-upscale, the tiny models (the point is the fixed cost per process: Python and library "
        f"imports, model resolution and loading). Per-image saving by batching: {(separate - together) / n:.1f} s."
    )
    return s


BENCHMARKS = {
    "overhead": overhead,
    "grid": grid,
    "naive": naive,
    "memory": memory,
    "esrgan": esrgan,
    "realesrgan": realesrgan,
    "precision": precision,
    "batch": batch,
    "fast": fast_modes,
    "sizes": sizes,
}
