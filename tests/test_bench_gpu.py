"""bench/gpu.py in quick mode: every section runs on the tiny models, so the script cannot rot."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def gpu():
    sys.path.insert(0, str(BENCH))
    try:
        import gpu

        yield gpu
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture
def tiny(models) -> list[str]:
    """The session's tiny SD 1.5 models instead of a build of the benchmark's own."""
    return ["--model", models["sd15"], "--controlnet", models["sd15-controlnet"]]


def tables(text: str) -> dict[str, list[list[str]]]:
    """Section title -> body rows (cells stripped) of the markdown table under it."""
    out: dict[str, list[list[str]]] = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        lines = [ln for ln in body.splitlines() if ln.startswith("|")]
        out[title] = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return out


def section(found: dict[str, list[list[str]]], number: int) -> list[list[str]]:
    (rows,) = [rows for title, rows in found.items() if title.startswith(f"{number}. ")]
    return rows


def test_without_a_gpu_it_says_so_and_measures_nothing(gpu, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.md"
    assert gpu.main(["--out", str(out)]) == 0
    text = out.read_text()
    assert "no CUDA GPU here" in text and "--quick" in text
    assert tables(text) == {}


def test_quick_run_fills_every_table(gpu, tmp_path, tiny):
    out = tmp_path / "gpu.md"
    only = "dtype,attention,tile_batch,naive,vram,oom"
    code = gpu.main(["--quick", "--device", "cpu", *tiny, "--out", str(out), "--only", only])
    assert code == 0
    found = tables(out.read_text())
    assert len(found) == 6
    cells = [c for rows in found.values() for r in rows for c in r]
    assert not [c for c in cells if c.startswith(("error:", "skipped:"))]
    assert [r[0] for r in section(found, 1)] == ["fp32", "bf16"]
    assert all(float(r[2]) > 0 for r in section(found, 1))
    attention = {r[0]: r for r in section(found, 2)}
    assert attention["xformers"][1] == "not installed"
    batches = section(found, 3)
    assert [r[0] for r in batches] == ["1", "2", "4", "8"]
    assert [r[1] for r in batches] == ["2", "4", "8", "16"]  # the CFG pair of each tile in a call
    assert all(float(r[3]) > 0 for r in batches)  # a time per denoising step
    ours, naive = section(found, 4)
    assert ours[1].startswith("9 × ") and naive[1] == "9 × 64×64"
    assert float(ours[4]) == 1.0 and float(naive[4]) > 0
    assert [r[0] for r in section(found, 5)] == ["64²", "128²"]
    fits, fails = section(found, 6)
    # tile batch 4 (8 samples) and 2 (4 samples) fail, 1 (the CFG pair) fits: two retries
    assert fits[3:5] == ["2", "tile batch 1, tile 64, VAE tile 512"] and fits[6] == "ok"
    assert fails[3] == "2" and fails[6].startswith("SdenhanceError: out of CPU memory")


def test_rows_beyond_the_time_budget_are_skipped(gpu, tmp_path, tiny):
    out = tmp_path / "gpu.md"
    args = ["--quick", "--device", "cpu", *tiny, "--out", str(out), "--time-budget", "0"]
    assert gpu.main([*args, "--only", "dtype,tile_batch"]) == 0
    found = tables(out.read_text())
    rows = section(found, 1) + section(found, 3)
    assert len(rows) == 6
    assert all(r[1].startswith("skipped: 0 s of the time budget left") for r in rows)


def test_quick_compile_section(gpu, tmp_path, tiny):
    out = tmp_path / "gpu.md"
    args = ["--quick", "--device", "cpu", *tiny, "--out", str(out), "--only", "compile"]
    assert gpu.main(args) == 0
    eager, first, other = section(tables(out.read_text()), 7)
    assert eager[0].startswith("eager") and float(eager[2]) > 0
    assert float(first[1]) > 0 and float(first[2]) > 0  # the first call traced the UNet
    assert float(other[1]) > 0  # a new tile shape traced it again
