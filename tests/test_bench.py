"""The benchmark harness in quick mode: tiny models, tiny sizes, every table produced."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import naive
        import run

        yield run, naive
    finally:
        sys.path.remove(str(BENCH))


def test_quick_run_writes_markdown_tables(bench_modules, tmp_path):
    run, _ = bench_modules
    results = tmp_path / "RESULTS.md"
    code = run.main(
        [
            "--quick",
            "--only",
            "grid,overhead,naive,precision,fast,sizes",
            "--cache",
            str(tmp_path / "models"),
            "--results",
            str(results),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    text = results.read_text()
    for title in (
        "## Machine",
        "## 1. Orchestration overhead",
        "## 2. Tile-grid waste",
        "## 3. Against the naive per-tile baseline",
        "## 6. Precision",
        "## 8. Fast modes",
        "## 9. Ours against the naive baseline at three sizes",
        "## Targets",
    ):
        assert title in text
    assert "| part | calls | batch rows | seconds | % of wall |" in text
    assert "|---|---:|---:|---:|---:|" in text
    assert "| 4096×4096 |" not in text  # quick mode keeps to small grids
    assert "**orchestration**" in text
    assert "| 128×96 | 2 / 2 |" in text and "| 192×128 |" in text  # bench 9's quick sizes


def test_unknown_benchmark_is_refused(bench_modules, capsys):
    run, _ = bench_modules
    assert run.main(["--only", "speed"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_naive_grid_and_paste(bench_modules):
    _, naive = bench_modules
    assert naive.naive_spans(768, 512, 64) == [(0, 512), (256, 768)]
    assert naive.naive_spans(1000, 512, 64) == [(0, 512), (448, 960), (488, 1000)]
    assert naive.naive_spans(300, 512, 64) == [(0, 300)]
    boxes = naive.naive_grid(768, 512, 512, 64)
    assert boxes == [(0, 0, 512, 512), (256, 0, 768, 512)]
    # tiles that agree paste back exactly, whatever the feather
    rng = np.random.default_rng(0)
    image = rng.random((512, 768, 3)).astype(np.float32)
    tiles = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
    for feather in (None, 16):
        np.testing.assert_allclose(
            naive.feathered_paste(tiles, boxes, 768, 512, feather), image, atol=1e-6
        )


def test_seam_ratio_sees_a_step_and_not_a_smooth_image(bench_modules):
    _, naive = bench_modules
    yy, xx = np.mgrid[0:128, 0:256].astype(np.float32)
    smooth = np.repeat(((xx + yy) / 400.0)[:, :, None], 3, axis=2)
    cols = naive.transition_mask([(0, 160), (96, 256)], 256, 16)
    rows = np.zeros(128, bool)
    assert naive.seam_ratio(smooth, cols, rows) == pytest.approx(1.0, abs=0.05)
    stepped = smooth.copy()
    stepped[:, 128:] += 0.2  # a tone step at the middle of the overlap
    assert naive.seam_ratio(stepped, cols, rows) > 2


def test_colorfix_benchmark_scores_and_tables():
    sys.path.insert(0, str(BENCH))
    try:
        import colorfix

        scores = colorfix.evaluate(photos=("chelsea",), drifts=("cast",))
        tables, _ = colorfix.tables(scores, None)
        verdicts = colorfix.verdicts(scores)
    finally:
        sys.path.remove(str(BENCH))
    assert tables[0].startswith(
        "| method | dE (same size) | detail (same size) | gain (same size) |"
    )
    assert "| dE by drift | cast = | cast 1/4 |" in tables[1]
    de = {m: next(v[0] for k, v in s.items() if k[2] == 4) for m, s in scores.items()}
    # the clean photo plus its texture is the floor; the drifted output is far above it
    assert de["oracle"] < de["local"] < de["none"]
    assert de["none"] > 3.0
    assert set(scores) >= {"local", "wavelet", "lab", "hist", "adain", "none", "oracle"}
    assert [v[0].split(",")[1].strip() for v in verdicts] == [
        "same-size reference: mean dE2000 ≤ 0.35 with detail correlation ≥ 0.96",
        "1/4-size reference: mean dE2000 ≤ 0.35 with detail correlation ≥ 0.96",
    ]


def test_tiling_benchmark_measures_both_grids(bench_modules, tmp_path):
    """bench/tiling.py on the tiny models: a seam row per grid and zone, the stand-in table."""
    sys.path.insert(0, str(BENCH))
    try:
        import tiling

        results = tmp_path / "RESULTS.md"
        code = tiling.main(
            ["--quick", "--cache", str(tmp_path / "models"), "--results", str(results)]
        )
    finally:
        sys.path.remove(str(BENCH))
    assert code == 0
    text = results.read_text()
    assert text.startswith("<!-- tiling -->") and text.rstrip().endswith("<!-- /tiling -->")
    rows = [line for line in text.splitlines() if line.startswith("| 192×128 |")]
    assert [r.split(" | ")[2] for r in rows] == ["merged", "shifted", "shifted"]
    stand_in = {
        r.split(" | ")[0].lstrip("| ").split(" (")[0]: r.split(" | ")[1:]
        for r in text.splitlines()
        if r.startswith(("| untiled |", "| merged (", "| fixed grid", "| shifted ("))
    }
    assert stand_in["merged"][0] == stand_in["untiled"][0]  # the merged grid is exact there
    assert stand_in["merged"][2].rstrip(" |") == "0.0000"
    assert float(stand_in["fixed grid, no overlap"][1]) > float(stand_in["shifted"][1]) > 1


def test_realesrgan_bench_quick_writes_its_own_section(bench_modules, tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import realesrgan
    finally:
        sys.path.remove(str(BENCH))
    results = tmp_path / "RESULTS.md"
    results.write_text("# kept\n\nother text\n")
    for _ in range(2):  # the second run replaces the section, it does not add one
        assert realesrgan.main(["--quick", "--results", str(results)]) == 0
    text = results.read_text()
    assert text.startswith("# kept\n\nother text\n")
    assert text.count("<!-- realesrgan -->") == 1 and text.count("<!-- /realesrgan -->") == 1
    assert "| model | tile bound px | RSS with the net loaded MiB |" in text
    assert "| `realesr-animevideov3-x4` | ×2 | 1 |" in text
    assert "| `realesr-animevideov3` | ×2 | 1 |" in text  # the family name's row
    assert "bf16 storage" in text and "peak RSS growth per output MP" in text
