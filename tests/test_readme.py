"""The README's examples run: its Python block and every command line, on tiny models."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdenhance.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_gives_the_two_setup_commands_and_ci_runs_one():
    setup = blocks("console")[0]
    assert "make demo" in setup and "make test" in setup
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.fixture
def world(tmp_path, models, monkeypatch):
    """A folder holding every file the README's examples name, and tiny models as defaults."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDENHANCE_MODEL", models["sd15"])
    monkeypatch.setenv("SDENHANCE_CONTROLNET", models["sd15-controlnet"])
    small = Image.open(ROOT / "examples/images/chelsea.png").convert("RGB").resize((40, 28))
    (tmp_path / "examples/images").mkdir(parents=True)
    small.save(tmp_path / "examples/images/chelsea.png")
    for name in ("photo.png", "a.png", "b.png", "upscaled.png"):
        small.save(tmp_path / name)
    for folder in ("photos", "art"):
        (tmp_path / folder).mkdir()
        small.save(tmp_path / folder / "one.png")
    mask = np.zeros((28, 40), np.uint8)
    mask[8:20, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / "one_mask.png")
    (tmp_path / "out").mkdir()
    return tmp_path


def test_python_example_runs(world):
    code = blocks("python")[0]
    # the example as written, with fewer steps so the tiny model runs it quickly
    code = code.replace("creativity=0.35,", "creativity=0.35, steps=4,")
    exec(compile(code, "README.md", "exec"), {})
    assert Image.open(world / "out/chelsea_x2.png").size == (80, 56)
    # what the example wrote is described by `sdenhance info`: both steps, sizes, the seed
    result = CliRunner().invoke(app, ["info", "--json", str(world / "out/chelsea_x2.png")])
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    record = described["sdenhance"]
    assert [s["stage"] for s in record["steps"]] == ["upscale", "colorfix"]
    assert record["size_in"] == [40, 28] and record["size_out"] == [80, 56]
    assert record["seed"] == 1 and record["input"]["name"] == "chelsea.png"
    assert described["prompt"] == "a tabby cat, detailed fur"
    assert described["parameters"]["Stages"] == "upscale > colorfix"
    assert described["parameters"]["Original size"] == "40x28"


def test_every_command_line_runs(world):
    lines = [ln for ln in blocks("console")[1].splitlines() if ln.startswith("sdenhance ")]
    assert len(lines) >= 14
    fast = ["--steps", "2"]
    for line in lines:
        args = shlex.split(line)[1:]
        args = [str(p) for a in args for p in (sorted(world.glob(a)) if "*" in a else [a])]
        if args[0] in {"upscale", "img2img", "inpaint", "facefix", "expand", "run"}:
            args += ["--set", "steps=2"] if args[0] == "run" else fast
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, (line, result.output)


def test_demo_input_is_bundled():
    assert (ROOT / "examples/images/chelsea.png").is_file()
    assert "examples/images/chelsea.png" in (ROOT / "Makefile").read_text()
