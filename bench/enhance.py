"""The `enhance` benchmark: diagnosis precision and recall, its speed, and the offline plan's
quality against Real-ESRGAN alone and bicubic; the deblur stage's gain at the image's own size.

    python bench/enhance.py                       # prints the tables, updates bench/RESULTS.md
    python bench/enhance.py --quick --results -   # a few cases, print only (the smoke test)

Everything is offline and seeded: the images and degradations of `enhance_data`, the bundled
Real-ESRGAN model, metrics from `sdenhance.ops.metrics` against the clean ground truth.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import enhance_data as data  # noqa: E402
from enhance_quality import deblur_section, plan_section  # noqa: E402
from harness import load_average, splice_section, table  # noqa: E402

SECTION = "enhance"
SCORED = ("noise", "blur", "jpeg", "faces", "text", "illustration", "old_photo", "cast", "clipping")
TARGETS = {"noise": 0.9, "blur": 0.9, "jpeg": 0.9, "faces": 0.9, "text": 0.9}


# --- 1. diagnosis ------------------------------------------------------------------------------


def diagnosis_section(quick: bool) -> tuple[list[str], dict[str, float]]:
    from sdenhance.enhance.run import diagnose_image

    counts = {n: defaultdict(int) for n in SCORED}
    misses: dict[str, list[str]] = defaultdict(list)
    sources = data.sources()
    if quick:
        sources = [s for s in sources if s.name in ("astronaut", "page 16 px", "flat art 1")]
    n_cases = 0
    for source, deg, rgb, labels in data.cases(sources):
        found = diagnose_image(rgb)
        n_cases += 1
        for name in SCORED:
            truth, said = name in labels, found.present(name)
            counts[name][{(1, 1): "tp", (1, 0): "fn", (0, 1): "fp", (0, 0): "tn"}[truth, said]] += 1
            if truth != said:
                misses[name].append(f"{'FN' if truth else 'FP'} {source.name} / {deg.name}")
    rows, recall = [], {}
    for name in SCORED:
        c = counts[name]
        p = c["tp"] / max(1, c["tp"] + c["fp"])
        r = c["tp"] / max(1, c["tp"] + c["fn"])
        recall[name] = min(p, r) if c["tp"] + c["fn"] else float("nan")
        target = f"≥ {TARGETS[name]}" if name in TARGETS else "–"
        met = (
            "" if name not in TARGETS else ("met" if min(p, r) >= TARGETS[name] else "**not met**")
        )
        rows.append([name, c["tp"] + c["fn"], c["fp"] + c["tn"], p, r, target, met])
    ai = metadata_rows()
    rows.append(["ai_generated", ai[0], ai[1], ai[2], ai[3], "–", ""])
    lines = [
        f"### Diagnosis: precision and recall ({n_cases} cases)",
        "",
        table(["finding", "positives", "negatives", "precision", "recall", "target", ""], rows),
        "",
        "Missed and false findings: "
        + "; ".join(
            f"**{k}**: " + ", ".join(v[:8]) + (" …" if len(v) > 8 else "")
            for k, v in misses.items()
            if v
        ),
    ]
    return lines, recall


def metadata_rows() -> tuple[int, int, float, float]:
    """`ai_generated` through the real reader: PNGs written with and without A1111 infotext."""
    from PIL import PngImagePlugin

    from sdenhance.enhance.run import diagnose_image
    from sdenhance.io.load import read_metadata

    tp = fp = fn = tn = 0
    rgb = data.downscale(data.sources()[0].rgb, 4)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(6):
            info = PngImagePlugin.PngInfo()
            if i % 2 == 0:
                info.add_text(
                    "parameters", f"a cat {i}\nNegative prompt: blur\nSteps: 20, Seed: {i}"
                )
            path = Path(tmp) / f"{i}.png"
            Image.fromarray(rgb).save(path, pnginfo=info)
            said = diagnose_image(rgb, metadata=read_metadata(path)).present("ai_generated")
            tp, fp = tp + (said and i % 2 == 0), fp + (said and i % 2 == 1)
            fn, tn = fn + (not said and i % 2 == 0), tn + (not said and i % 2 == 1)
    return tp + fn, fp + tn, tp / max(1, tp + fp), tp / max(1, tp + fn)


def timing_lines(repeats: int) -> list[str]:
    import cv2

    from sdenhance.enhance.run import diagnose_image

    rgb = cv2.resize(data.sources()[5].rgb, (1000, 1000), interpolation=cv2.INTER_CUBIC)
    seconds, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        diagnose_image(rgb)
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return [
        f"Diagnosis of a 1000×1000 photo (faces included), {repeats} runs on one core: CPU time "
        f"median {np.median(cpu):.3f} s (best {min(cpu):.3f} s); wall time median "
        f"{np.median(seconds):.3f} s on a 2-core machine shared with other work (load average "
        f"{load_average()}).",
    ]


# --- report -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/enhance.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few cases (seconds; smoke test)")
    p.add_argument("--results", default=None, help="markdown file to update ('-': print only)")
    p.add_argument("--only", default="diagnosis,plan,deblur", help="comma-separated subset")
    p.add_argument("--verbose", action="store_true", help="print each plan case's plan")
    args = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # one core: the figures are per core, and stable
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    started, load_before = time.perf_counter(), load_average()
    only = set(args.only.split(","))
    diag, _ = diagnosis_section(args.quick) if "diagnosis" in only else ([], {})
    timing = timing_lines(3 if args.quick else 10) if "diagnosis" in only else []
    plan_lines, plan_summary = (
        plan_section(args.quick, args.verbose) if "plan" in only else ([], [])
    )
    deblur_lines, deblur_summary = deblur_section(args.quick) if "deblur" in only else ([], "")
    body = [
        "## enhance: diagnosis, offline plan, deblur",
        "",
        "Generated by `bench/enhance.py`"
        + (" **(quick mode: a few cases)**" if args.quick else "")
        + ". "
        + data.__doc__.strip().split("\n\n")[0].replace("\n", " "),
        "",
        *diag,
        "",
        *timing,
        "",
        *plan_lines,
        "",
        *deblur_lines,
        "",
        "Summary: "
        + "; ".join([*plan_summary, *([deblur_summary] if deblur_summary else [])])
        + ".",
        "",
        f"_Benchmark wall time: {time.perf_counter() - started:.0f} s; load average "
        f"{load_before} before, {load_average()} after._",
    ]
    text = "\n".join(body)
    print(text)
    target = (
        args.results if args.results else (None if args.quick else str(BENCH_DIR / "RESULTS.md"))
    )
    if target and target != "-":
        path = Path(target)
        path.write_text(splice_section(path.read_text() if path.is_file() else "", SECTION, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
