"""Bench 8: the opt-in speed-ups, each against the exact upscale on the real-size random models.

    python bench/run.py --only fast                # this benchmark alone (section of RESULTS.md)
    python bench/run.py --only fast --quick        # tiny models and sizes (smoke test)

Per output size, one exact `Enhancer.upscale` and one per mode, same seed: wall and CPU time,
the CPU time of the denoising phase (UNet + ControlNet + merging; the VAE and pre-upscale do
not change with the modes), the model work done (UNet and ControlNet batch rows, full UNet
passes) and the mean absolute difference from the exact output in 8-bit levels. The weights
are random, so that difference says how far a mode moves the computation, NOT how good its
images are: the published quality results of each method are cited in docs/speed.md.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from harness import Section, stopwatch, table

# (label, options): each mode alone, then the `fast` preset
MODES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("exact", {}),
    ("`--control-cond-only`", {"control_cond_only": True}),
    ("`--cfg-end 0.8`", {"cfg_end": 0.8}),
    ("`--token-merging 0.5`", {"token_merging": 0.5}),
    ("`--cache-interval 2`", {"cache_interval": 2}),
    ("`--fast`", {"fast": True}),
)
# (input size, scale, modes) -> 768×512 and 1024×1024 outputs; quick mode: tiny sizes. At
# 1024×1024 (nine tiles, ~4 min an exact run on 2 CPU cores) the exact run, the preset and the
# largest single gain keep the benchmark near 20 minutes; per tile the modes do there what they
# do at 768×512, only the VAE's share of the whole run differs.
ALL = tuple(label for label, _ in MODES)
LARGE = ("exact", "`--cache-interval 2`", "`--fast`")
SIZES = (((384, 256), 2.0, ALL), ((512, 512), 2.0, LARGE))
QUICK_SIZES = (((48, 32), 2.0, ALL), ((64, 64), 2.0, LARGE))
STEPS, CREATIVITY = 10, 0.4  # four denoising steps: feature caching needs several


class Counts:
    """Batch rows into the UNet and ControlNet and full UNet passes (mid-block calls)."""

    def __init__(self, engine: Any) -> None:
        self.n: Counter[str] = Counter()
        unet, cn = engine.base.unet, engine.controlnet
        watched = [(unet.up_blocks[-1], "UNet")]
        if cn is not None:
            watched.append((cn.down_blocks[0], "ControlNet"))
        self.hooks = [
            m.register_forward_pre_hook(self._rows(name), with_kwargs=True) for m, name in watched
        ]
        self.hooks.append(unet.mid_block.register_forward_pre_hook(self._calls("full")))

    def _rows(self, name: str):
        def hook(module, args, kwargs):
            x = kwargs.get("hidden_states", args[0] if args else None)
            self.n[name] += int(x.shape[0])

        return hook

    def _calls(self, name: str):
        def hook(module, args):
            self.n[name] += 1

        return hook

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


def measure(enh: Any, image: Any, options: dict[str, Any]) -> dict[str, Any]:
    """One upscale: wall and CPU seconds, of the whole call and of its denoising phase."""
    from sdenhance.stages import tile_upscale as tu

    phase: dict[str, float] = {}
    real = tu.denoise

    def denoise(*args: Any, **kwargs: Any) -> Any:
        with stopwatch() as sw:
            out = real(*args, **kwargs)
        phase.update(sw)
        return out

    tu.denoise = denoise
    counts = Counts(enh.engine)
    try:
        with stopwatch() as sw:
            out = enh.upscale(image, seed=0, **options)
    finally:
        tu.denoise = real
        counts.close()
    return {
        "wall": sw["seconds"],
        "cpu": sw["cpu"],
        "denoise_cpu": phase["cpu"],
        "counts": dict(counts.n),
        "image": np.asarray(out.convert("RGB"), np.float64),
    }


def fast_modes(b: Any) -> Section:
    from suites import _loaded_enhancer, photo

    from sdenhance.stages import build_options

    shared = b.shared.get("ours", {}).get("enhancer")
    enh = shared if shared is not None else _loaded_enhancer(b)[0]
    s = Section("fast", "8. Fast modes: speed-up and distance from the exact output")
    fast = build_options("upscale", {"fast": True}).speedups()
    for size, scale, labels in QUICK_SIZES if b.quick else SIZES:
        img = photo(size)
        base = b.stage_options(scale=scale, steps=STEPS, creativity=CREATIVITY)
        rows, exact = [], None
        for label, mode in [m for m in MODES if m[0] in labels]:
            print(f"[bench] fast: {size[0] * scale:.0f}×{size[1] * scale:.0f} {label}", flush=True)
            r = measure(enh, img, {**base, **mode})
            if exact is None:
                exact = r
            c = r["counts"]
            rows.append(
                [
                    label,
                    r["wall"],
                    r["cpu"],
                    exact["cpu"] / r["cpu"],
                    r["denoise_cpu"],
                    exact["denoise_cpu"] / r["denoise_cpu"],
                    c.get("UNet", 0),
                    c.get("full", 0),
                    c.get("ControlNet", 0),
                    float(np.abs(r["image"] - exact["image"]).mean()),
                ]
            )
            print("[bench] fast:", rows[-1][:-1], f"{rows[-1][-1]:.3f}", flush=True)
        w, h = int(size[0] * scale), int(size[1] * scale)
        s.tables.append(
            f"**{w}×{h} output** ({size[0]}×{size[1]} ×{scale:g}, {enh.last_record['tiles']} "
            f"tile(s), steps {STEPS} × creativity {CREATIVITY} → 4 denoising steps)\n\n"
            + table(
                [
                    "mode",
                    "wall s",
                    "CPU s",
                    "speed-up (CPU s)",
                    "denoise CPU s",
                    "denoise speed-up",
                    "UNet rows",
                    "full UNet passes",
                    "ControlNet rows",
                    "mean abs. diff. from exact (0–255; not a quality measure)",
                ],
                rows,
            )
        )
    s.notes.append(
        "Same seed, same photo, guidance "
        f"{b.guidance}, resemblance {b.resemblance}, tile {b.tile}, overlap {b.overlap}, "
        "Lanczos pre-upscale, DPM++ 2M Karras, one run each. Speed-ups are ratios of this "
        "process's "
        "CPU seconds (both threads), steadier than wall time on a machine shared with other work; "
        "*denoise* is the denoising phase alone (the VAE, text encoder and pre-upscale do not "
        "change with the modes). "
        "*UNet rows*: batch rows through the UNet's last up block (every step, shallow or not); "
        "*full UNet passes*: calls of its middle block (the deep path); *ControlNet rows*: rows "
        "through its first down block. `--fast` is "
        + ", ".join(
            f"`--{k.replace('_', '-')} {v}`"
            for k, v in vars(fast).items()
            if v != getattr(type(fast)(), k)
        )
        + "."
    )
    s.notes.append(
        "**The mean absolute difference is not an image-quality measure.** The weights are "
        "random: it says how far each approximation moves this computation from the exact one, "
        "on models whose outputs mean nothing. What each method does to real images is in its "
        "paper (cited in docs/speed.md). `--control-cond-only` shows 0 here although it "
        "changes results: the random ControlNet is built as diffusers starts training one "
        "(`ControlNetModel.from_unet`), with zero output convolutions, so its residuals are "
        "zero whichever rows it sees; its compute is the real one. The test models' ControlNet "
        "is not zero, and tests/test_fast_modes.py shows the mode changing the output there."
    )
    return s
