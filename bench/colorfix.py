"""Colour-fix benchmark: how well each colour-transfer method removes SD-like colour drift from an
output while keeping the detail the diffusion added.

    python bench/colorfix.py                 # prints the tables, updates bench/RESULTS.md
    python bench/colorfix.py --quick --results -   # one photo, two drifts, print only

It needs no model; its section of RESULTS.md sits between `<!-- colorfix -->` markers, which
`bench/run.py` keeps. A full run takes a few minutes (7 on two shared, busy cores).

Cases
-----
Every photo × every drift × both reference sizes. A photo P is a scikit-image sample as float64
in [0, 1], cropped to a multiple of 4 px per side. The "diffused output" is

    O = clip(drift(P) + d, 0, 1),   d = 0.04 · (n − G₁(n)) on all three channels,

n white Gaussian noise (seeded per photo), G_σ a Gaussian blur of σ px: grey fine texture standing
for the detail a diffusion pass invents. The drifts (`color_drifts.DRIFTS`) are what diffusion
does to colour: a cast (per-channel offset), a per-channel gain, saturation and contrast changes,
a gamma darkening, a gradient cast across the image, a blotchy multiplicative drift (a smooth
random gain field, as per-tile drift looks) and all of these mixed. Each method gets O and a
reference: P itself ("same size"), or P shrunk 4× with pixel-area averaging ("1/4 size", as when
the input of a 4× upscale is the reference).

Measures (defined once, for every method alike)
-----------------------------------------------
- **dE**: mean CIEDE2000 between G₂(result) and G₂(P): both low-passed with a Gaussian of σ = 2 px
  (`skimage.filters.gaussian` per channel, reflected edges), converted with `skimage.color.rgb2lab`
  (D65) and compared with `skimage.color.deltaE_ciede2000`, averaged over all pixels. The truth is
  always the full-size photo, also when the method only saw the 1/4-size reference. The low-pass
  keeps every colour structure of 8 px period and above, where multiplicative drift lives, and
  leaves the injected texture mostly out; the floor it leaves (the `oracle` row: P + d, drift
  removed and detail kept exactly) is printed with the results.
- **detail**: Pearson correlation, over all pixels, of H(Y(result) − Y(P)) with H(Y(d)), where Y is
  luminance (Rec. 709 weights) and H(x) = x − G₂(x) the complement of the same low-pass. 1 means
  the fine band of the result is the photo's own plus the injected texture (possibly rescaled);
  residual drift in the photo's fine structure, lost or smeared texture all lower it.
- **gain**: least-squares slope of the same kept detail on the injected one (how much of its
  amplitude survives; a fix that undoes a gain may rightly rescale it). Reported, not scored.
- **new content kept** (a separate probe, reported, not scored): the `mixed` drift with the 1/4-size
  reference, plus structure the reference does not have at middle scales, m = 0.05 · (G_σ(n) −
  G_4σ(n)) / std · (1, 0.8, 0.6) for σ = 1.5, 3 and 6 px (blobs of about 5–50 px), added to the
  output; the figure is the least-squares slope of Y(result) − Y(P) on Y(m), averaged over the
  photos: 1 keeps it at full strength, 0 swaps it for the reference. No fix can tell such
  structure from drift; this shows where each method draws the line.
- **s/MP**: seconds per output megapixel of one call on a 2048×2048 output with a 512×512
  reference, one thread (OpenCV set to one thread), best of two.

Methods: every `sdenhance.ops.color` method, and scikit-image's `match_histograms` called directly
(the reference at its own size), which is what `hist` reproduces.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from color_drifts import DRIFTS, LUMA

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR.parent))
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
QUICK_PHOTOS = ("chelsea",)
QUICK_DRIFTS = ("cast", "mixed")
PROBE_SIGMAS = (1.5, 3.0, 6.0)
REFERENCE_SCALES = (1, 4)  # reference side = photo side / this
SIGMA = 2.0  # the low-pass of the dE measure and the complement of the detail measure
DETAIL_AMPLITUDE = 0.04
TIMING_SIDE = 2048

# ----------------------------------------------------------------------------------------------
# cases and measures


def load_photo(name: str) -> np.ndarray:
    from skimage import data

    photo = getattr(data, name)()[..., :3].astype(np.float64) / 255.0
    h, w = (s - s % 4 for s in photo.shape[:2])
    return photo[:h, :w]


def injected_detail(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """d of the module docstring: grey high-pass noise, (H, W, 1)."""
    from skimage.filters import gaussian

    n = np.random.default_rng(seed).standard_normal(shape[:2])
    return DETAIL_AMPLITUDE * (n - gaussian(n, sigma=1.0))[..., None]


def shrink(photo: np.ndarray, factor: int) -> np.ndarray:
    from sdenhance.ops.resize import resize

    if factor == 1:
        return photo
    h, w = photo.shape[:2]
    return resize(photo, (w // factor, h // factor), "area").astype(np.float64)


def lowpass(x: np.ndarray) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(x, sigma=SIGMA, channel_axis=-1 if x.ndim == 3 else None, preserve_range=True)


class Truth:
    """What the measures need of a clean photo and its injected detail, computed once."""

    def __init__(self, photo: np.ndarray, detail: np.ndarray) -> None:
        from skimage.color import rgb2lab

        self.photo = photo
        self.lab = rgb2lab(lowpass(photo))
        self.luma = photo @ LUMA
        injected = detail[..., 0] - lowpass(detail[..., 0])
        self.injected = injected.ravel()


def score(result: np.ndarray, truth: Truth) -> tuple[float, float, float]:
    """(dE, detail correlation, detail gain) of `result` against the clean photo."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    result = np.asarray(result, dtype=np.float64)
    de = float(np.mean(deltaE_ciede2000(rgb2lab(lowpass(result)), truth.lab)))
    kept = result @ LUMA - truth.luma
    kept = (kept - lowpass(kept)).ravel()
    corr = float(np.corrcoef(kept, truth.injected)[0, 1])
    slope = float(kept @ truth.injected / (truth.injected @ truth.injected))
    return de, corr, slope


def methods() -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    from skimage.exposure import match_histograms

    from sdenhance.ops.color import METHODS, color_transfer

    table: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        m: (lambda o, r, m=m: color_transfer(o, r, m)) for m in METHODS
    }
    table["skimage match_histograms"] = lambda o, r: np.clip(
        match_histograms(o, r, channel_axis=-1), 0, 1
    )
    return table


def evaluate(
    photos: tuple[str, ...] = PHOTOS, drifts: tuple[str, ...] = tuple(DRIFTS)
) -> dict[str, dict[tuple[str, str, int], tuple]]:
    """{method: {(photo, drift, reference scale): (dE, corr, gain)}}, plus the `oracle` row."""
    table = methods()
    scores: dict[str, dict[tuple[str, str, int], tuple]] = {m: {} for m in [*table, "oracle"]}
    for i, name in enumerate(photos):
        photo = load_photo(name)
        detail = injected_detail(photo.shape, seed=100 + i)
        truth = Truth(photo, detail)
        refs = {k: shrink(photo, k) for k in REFERENCE_SCALES}
        for j, drift_name in enumerate(drifts):
            rng = np.random.default_rng(1000 * i + j)
            output = np.clip(DRIFTS[drift_name](photo, rng) + detail, 0, 1)
            oracle = score(np.clip(photo + detail, 0, 1), truth)
            for k, ref in refs.items():
                scores["oracle"][name, drift_name, k] = oracle
                for method, fn in table.items():
                    scores[method][name, drift_name, k] = score(fn(output, ref), truth)
    return scores


def new_content_kept(photos: tuple[str, ...] = PHOTOS) -> dict[str, list[float]]:
    """{method: [mean slope per PROBE_SIGMAS]}: the probe of the module docstring."""
    from skimage.filters import gaussian

    table = methods()
    slopes: dict[str, list[list[float]]] = {m: [[] for _ in PROBE_SIGMAS] for m in table}
    for i, name in enumerate(photos):
        photo = load_photo(name)
        ref = shrink(photo, 4)
        for s, sigma in enumerate(PROBE_SIGMAS):
            rng = np.random.default_rng(500 + 10 * i + s)
            n = rng.standard_normal(photo.shape[:2])
            band = gaussian(n, sigma=sigma) - gaussian(n, sigma=4 * sigma)
            structure = (0.05 * band / band.std())[..., None] * np.array([1.0, 0.8, 0.6])
            output = np.clip(DRIFTS["mixed"](photo, rng) + structure, 0, 1)
            probe = (structure @ LUMA).ravel()
            for method, fn in table.items():
                change = fn(output, ref).astype(np.float64) @ LUMA - photo @ LUMA
                change = change.ravel() - change.mean()
                slopes[method][s].append(float(change @ probe / (probe @ probe)))
    return {m: [float(np.mean(v)) for v in per] for m, per in slopes.items()}


def seconds_per_mp(repeats: int = 2) -> dict[str, float]:
    """One call on a TIMING_SIDE² output against a reference 4× smaller, one thread."""
    import cv2

    from sdenhance.ops.resize import resize

    photo = load_photo("astronaut")
    big = np.clip(resize(photo, (TIMING_SIDE, TIMING_SIDE), "bicubic"), 0, 1)
    output = np.clip(DRIFTS["mixed"](big, np.random.default_rng(0)), 0, 1).astype(np.float32)
    ref = shrink(big, 4).astype(np.float32)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        out = {}
        for method, fn in methods().items():
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn(output, ref)
                best = min(best, time.perf_counter() - t0)
            out[method] = best / (TIMING_SIDE**2 / 1e6)
        return out
    finally:
        cv2.setNumThreads(threads)


# ----------------------------------------------------------------------------------------------
# report


def _mean(values: list[tuple], index: int) -> float:
    return float(np.mean([v[index] for v in values]))


def tables(
    scores: dict, speed: dict[str, float] | None, kept: dict[str, list[float]] | None = None
) -> tuple[list[str], list[str]]:
    """(markdown tables, notes) for the run's scores."""
    from harness import table

    from sdenhance.ops.color import DEFAULT_METHOD as default

    drifts = [d for d in DRIFTS if any(key[1] == d for key in scores[default])]
    order = sorted(
        scores, key=lambda m: (m == "oracle", np.mean([v[0] for v in scores[m].values()]))
    )
    rows = []
    for m in order:
        per = {k: [v for key, v in scores[m].items() if key[2] == k] for k in REFERENCE_SCALES}
        row = [f"**{m}**" if m == default else m]
        for k in REFERENCE_SCALES:
            row += [_mean(per[k], 0), _mean(per[k], 1), _mean(per[k], 2)]
        row += [max(v[0] for v in scores[m].values()), None if speed is None else speed.get(m)]
        rows.append(row)
    head = ["method"]
    for k in REFERENCE_SCALES:
        size = "same size" if k == 1 else f"1/{k} size"
        head += [f"dE ({size})", f"detail ({size})", f"gain ({size})"]
    head += ["worst dE", "s/MP"]
    main = table(head, rows)

    drift_rows = []
    for m in order:
        row = [m]
        for d in drifts:
            for k in REFERENCE_SCALES:
                row.append(_mean([v for key, v in scores[m].items() if key[1:] == (d, k)], 0))
        drift_rows.append(row)
    drift_head = ["dE by drift"] + [
        f"{d} {'=' if k == 1 else f'1/{k}'}" for d in drifts for k in REFERENCE_SCALES
    ]
    photos = sorted({key[0] for key in scores[default]})
    notes = [
        f"{len(photos)} photo(s) ({', '.join(photos)}) × {len(drifts)} drift(s) × "
        f"{len(REFERENCE_SCALES)} reference sizes; means over photos and drifts. dE: mean "
        f"CIEDE2000 of the σ = {SIGMA:g} px Gaussian low-pass of the result against that of the clean photo "
        "(lower is better); detail: correlation of the result's fine luminance band (minus the "
        "photo's) with the injected texture's (higher is better); gain: its amplitude ratio. "
        "`oracle` is the clean photo plus the injected texture: the floor the measures leave. "
        "Definitions in the docstring of `bench/colorfix.py`; `=` same-size reference, `1/4` the "
        "4× smaller one.",
    ]
    out = [main, table(drift_head, drift_rows)]
    if kept:
        out.append(
            table(
                ["new content kept (slope)"] + [f"σ = {s:g} px" for s in PROBE_SIGMAS],
                [[m, *kept[m]] for m in order if m in kept],
            )
        )
        notes.append(
            "Third table: structure the reference lacks, added to the output at middle scales "
            "(`mixed` drift, 1/4-size reference); 1 keeps it, 0 replaces it by the reference."
        )
    notes.append(
        "`local` sees the same thing with both references (its fit grid is the output / 4, and "
        "the 4×-smaller reference is exactly the photo's 4×4 averages), hence equal columns. Its "
        "constants (window, ridges, bounds, residual blur) were chosen on other images (retina, "
        "hubble_deep_field, crops and flips of astronaut and coffee, other seeds), not on these. "
        "Its price is in the third table: structure of 10–50 px that the reference lacks is "
        "pulled further towards the reference than by `wavelet`."
    )
    return out, notes


def verdicts(scores: dict) -> list[tuple[str, str, bool]]:
    from sdenhance.ops.color import DEFAULT_METHOD as default

    out = []
    for k in REFERENCE_SCALES:
        values = [v for key, v in scores[default].items() if key[2] == k]
        de, corr = _mean(values, 0), _mean(values, 1)
        size = "same-size" if k == 1 else f"1/{k}-size"
        out.append(
            (
                f"default colour fix (`{default}`), {size} reference: mean dE2000 ≤ 0.35 with "
                "detail correlation ≥ 0.96",
                f"dE {de:.2f}, detail {corr:.3f}",
                de <= 0.35 and corr >= 0.96,
            )
        )
    return out


SECTION = "colorfix"


def section(quick: bool = False):
    """The benchmark as a `harness.Section` (tables, notes, target verdicts)."""
    from harness import Section

    if quick:
        scores, speed, kept = evaluate(QUICK_PHOTOS, QUICK_DRIFTS), None, None
    else:
        scores, speed, kept = evaluate(), seconds_per_mp(), new_content_kept()
    tabs, notes = tables(scores, speed, kept)
    return Section(
        key=SECTION,
        title="Colour fix against SD-like drift (`bench/colorfix.py`)",
        tables=tabs,
        notes=notes,
        verdicts=verdicts(scores),
    )


def markdown(s) -> str:
    """The section's markdown, its target verdicts first."""
    from harness import table

    rows = [[t, m, "met" if ok else "**not met**"] for t, m, ok in s.verdicts]
    s.tables.insert(0, table(["target", "measured", ""], rows))
    return s.markdown()


def main(argv: list[str] | None = None) -> int:
    import argparse

    from harness import load_average, splice_section

    p = argparse.ArgumentParser(prog="bench/colorfix.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one photo, two drifts, no timing")
    p.add_argument("--results", default=None, help="file to update, or - to print only")
    args = p.parse_args(argv)
    results = args.results or ("-" if args.quick else str(BENCH_DIR / "RESULTS.md"))
    t0, before = time.perf_counter(), load_average()
    s = section(args.quick)
    s.seconds = time.perf_counter() - t0
    s.load = f"{before} before, {load_average()} after"
    text = markdown(s)
    print(text)
    if results != "-":
        path = Path(results)
        old = path.read_text() if path.exists() else ""
        path.write_text(splice_section(old, SECTION, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
