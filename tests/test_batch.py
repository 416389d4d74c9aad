"""Batches: resume, per-item failures, interrupts, progress, models once, sharding across processes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from sdenhance import SdenhanceError
from sdenhance.batch import BatchItem, expand_inputs, plan, rank_and_world, shard
from sdenhance.cli import app, images
from sdenhance.cli import common as c
from sdenhance.cli.engine_options import engine_config, rank_device


def make_inputs(folder: Path, n: int, size=(24, 16)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = (np.random.default_rng(i).random((size[1], size[0], 3)) * 255).astype(np.uint8)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def make_reference(path: Path) -> Path:
    Image.new("RGB", (8, 8), (200, 120, 40)).save(path)
    return path


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def colorfix_args(src, ref, out) -> list[str]:
    return ["colorfix", str(src), "-r", str(ref), "--method", "adain", "-o", str(out) + "/"]


# ---------------------------------------------------------------------------------------------
# resume, failures, interrupts


def test_resume_skips_finished_outputs(tmp_path):
    make_inputs(tmp_path / "in", 3)
    ref = make_reference(tmp_path / "ref.png")
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(app, colorfix_args(tmp_path / "in", ref, out))
    assert first.exit_code == 0, first.output
    written = sorted(out.glob("*.png"))
    assert len(written) == 3 and len(first.stdout.split()) == 3
    stamps = {p: p.stat().st_mtime_ns for p in written}
    written[1].unlink()
    again = runner.invoke(app, colorfix_args(tmp_path / "in", ref, out))
    assert again.exit_code == 0, again.output
    assert again.stdout.split() == [str(written[1])]  # only the missing one is redone
    assert "skipped 2" in again.stderr
    for p in (written[0], written[2]):
        assert p.stat().st_mtime_ns == stamps[p]


def test_a_corrupt_input_fails_alone_with_a_summary_table(tmp_path):
    paths = make_inputs(tmp_path / "in", 3)
    paths[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    ref = make_reference(tmp_path / "ref.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, colorfix_args(tmp_path / "in", ref, out))
    assert result.exit_code == 3, result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["img00_colorfix.png", "img02_colorfix.png"]
    assert (
        "1 of 3 failed" in result.stderr
        and "img01.png" in result.stderr
        and "cannot read" in result.stderr
    )
    assert "done 2, skipped 0, failed 1" in result.stderr


def test_ctrl_c_mid_write_leaves_no_partial_file_and_exits_130(tmp_path, monkeypatch):
    make_inputs(tmp_path / "in", 3)
    ref = make_reference(tmp_path / "ref.png")
    out = tmp_path / "out"
    real_save = Image.Image.save
    calls = {"n": 0}

    def save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second output: half written, then Ctrl-C
            fp.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
            raise KeyboardInterrupt
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    result = CliRunner().invoke(app, colorfix_args(tmp_path / "in", ref, out))
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert result.exit_code == 130, result.output
    assert "interrupted: 1 of 3 written" in result.stderr
    assert [p.name for p in out.iterdir()] == ["img00_colorfix.png"]  # no partial, no temp file
    assert not leftovers(tmp_path)
    Image.open(out / "img00_colorfix.png").load()  # the finished one is complete
    resumed = CliRunner().invoke(app, colorfix_args(tmp_path / "in", ref, out))
    assert resumed.exit_code == 0 and len(list(out.glob("*.png"))) == 3


def test_interrupt_inside_a_stage_stops_the_batch(tmp_path, monkeypatch):
    make_inputs(tmp_path / "in", 3)
    ref = make_reference(tmp_path / "ref.png")
    from sdenhance.stages import colorfix

    real_run, seen = colorfix.run, []

    def run(image, opts, ctx):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real_run(image, opts, ctx)

    monkeypatch.setattr(colorfix, "run", run)
    result = CliRunner().invoke(app, colorfix_args(tmp_path / "in", ref, tmp_path / "out"))
    assert result.exit_code == 130 and len(seen) == 2
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["img00_colorfix.png"]


# ---------------------------------------------------------------------------------------------
# progress


def test_progress_shows_the_batch_and_the_current_image(tmp_path, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(images, "err_console", Console(file=buf, force_terminal=True, width=100))
    inputs = make_inputs(tmp_path / "in", 2)
    labels = []

    def work(item: BatchItem, ctx):
        for i in range(3):
            ctx.progress("denoise", i + 1, 3)
        labels.append(item.input.name)
        return Image.open(item.input).convert("RGB"), {}

    c.process_images([str(p) for p in inputs], str(tmp_path / "out") + "/", "test", work)
    shown = buf.getvalue()
    assert labels == ["img00.png", "img01.png"]
    assert "images" in shown and "denoise" in shown and "2/2" in shown
    assert len(list((tmp_path / "out").glob("*.png"))) == 2


def test_plain_stderr_gets_one_line_per_item(tmp_path):
    make_inputs(tmp_path / "in", 2)
    ref = make_reference(tmp_path / "ref.png")
    result = CliRunner().invoke(app, colorfix_args(tmp_path / "in", ref, tmp_path / "out"))
    assert "[1/2]" in result.stderr and "[2/2]" in result.stderr


# ---------------------------------------------------------------------------------------------
# models load once per process


def test_models_load_once_for_all_steps_and_images(models, tmp_path, monkeypatch):
    import diffusers

    from sdenhance.models.engine import Engine

    counts = {"pipeline": 0, "controlnet": 0}
    real_load = Engine._load_pipeline
    real_cn = diffusers.ControlNetModel.from_pretrained.__func__

    def load(self, *args, **kwargs):
        counts["pipeline"] += 1
        return real_load(self, *args, **kwargs)

    def load_cn(cls, *args, **kwargs):
        counts["controlnet"] += 1
        return real_cn(cls, *args, **kwargs)

    monkeypatch.setattr(Engine, "_load_pipeline", load)
    monkeypatch.setattr(diffusers.ControlNetModel, "from_pretrained", classmethod(load_cn))
    recipe = tmp_path / "two.toml"
    recipe.write_text("""
[[steps]]
stage = "upscale"
options = { scale = 2, creativity = 0.5, steps = 2, upscaler = "lanczos", tile = 64, overlap = 16, vae_tile = 128 }
[[steps]]
stage = "img2img"
options = { strength = 0.5, steps = 2 }
""")
    make_inputs(tmp_path / "in", 2, size=(64, 48))
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(recipe),
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--seed",
            "1",
            "--model",
            models["sd15"],
            "--controlnet",
            models["sd15-controlnet"],
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*_two.png"))) == 2
    assert counts == {"pipeline": 1, "controlnet": 1}


# ---------------------------------------------------------------------------------------------
# sharding


@pytest.mark.parametrize("n,world", [(0, 2), (1, 2), (7, 2), (7, 3), (10, 4), (3, 5)])
def test_shards_cover_every_item_exactly_once(n, world):
    items = list(range(n))
    shares = [shard(items, rank, world) for rank in range(world)]
    flat = [x for share in shares for x in share]
    assert sorted(flat) == items and len(flat) == len(set(flat))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_rank_and_world_from_the_environment(monkeypatch):
    assert rank_and_world() == (0, 1)
    assert shard([1, 2, 3]) == [1, 2, 3]
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    assert rank_and_world() == (2, 3) and shard(list(range(7))) == [2, 5]
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(SdenhanceError, match="bad process rank 3 of WORLD_SIZE=3"):
        rank_and_world()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(SdenhanceError, match="RANK='x' is not a whole number"):
        rank_and_world()


def test_output_names_do_not_depend_on_the_number_of_processes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        make_inputs(folder, 1)
    items = plan(
        expand_inputs([a / "img00.png", b / "img00.png"]), str(tmp_path / "out") + "/", "x"
    )
    assert [i.output.name for i in items] == ["img00_x.png", "img00_x_2.png"]
    assert shard(items, 1, 2) == [items[1]]


def test_engine_device_is_left_alone_without_gpus():
    assert rank_device(None) is None
    cfg = engine_config(device="cpu")
    assert rank_device(cfg) is cfg


def test_accelerate_launch_two_processes_do_every_input_once(tmp_path):
    inputs = make_inputs(tmp_path / "in", 5)
    ref = make_reference(tmp_path / "ref.png")
    out = tmp_path / "out"
    # `--cpu` alone starts one process unless MPI is installed; the torchrun launcher behind
    # `--multi_gpu` starts two plain processes (RANK/WORLD_SIZE set) and needs no GPU here
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "sdenhance",
        *colorfix_args(tmp_path / "in", ref, out),
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line for line in done.stdout.splitlines() if line.endswith(".png")]
    expected = sorted(str(out / f"{p.stem}_colorfix.png") for p in inputs)
    assert sorted(printed) == expected  # every input exactly once across both processes
    assert sorted(str(p) for p in out.glob("*.png")) == expected
    assert "process 1 of 2" in done.stderr and "process 2 of 2" in done.stderr


def test_process_images_exit_codes(tmp_path):
    inputs = make_inputs(tmp_path / "in", 2)

    def work(item, ctx):
        if item.input.name == "img01.png":
            raise SdenhanceError("bad one")
        return Image.open(item.input).convert("RGB"), {"extra": 1}

    with pytest.raises(typer.Exit) as info:
        c.process_images([str(p) for p in inputs], str(tmp_path / "out") + "/", "t", work)
    assert info.value.exit_code == 3
    from sdenhance.io.load import read_metadata

    record = read_metadata(tmp_path / "out" / "img00_t.png").sdenhance
    assert (
        record["extra"] == 1
        and record["input"]["name"] == "img00.png"
        and len(record["input"]["sha256"]) == 16
    )
