"""The scripts in examples/ run as users run them, pointed at the tiny models."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAST = ["--steps", "2", "--tile", "64", "--overlap", "16", "--upscaler", "lanczos"]


@pytest.fixture(autouse=True)
def tiny_models(models, tmp_path, monkeypatch):
    """Scripts read the model from the environment, as a user's shell would set it."""
    monkeypatch.setenv("SDENHANCE_MODEL", models["sd15"])
    monkeypatch.setenv("SDENHANCE_CONTROLNET", models["sd15-controlnet"])


def run_script(name: str, args: list[str], monkeypatch) -> object:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *args])
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"](args)


def photo(path: Path, size=(64, 48)) -> Path:
    src = Image.open(EXAMPLES / "images" / "chelsea.png").convert("RGB")
    src.resize(size, Image.Resampling.LANCZOS).save(path)
    return path


def test_upscale_folder_with_a_preset(tmp_path, monkeypatch, capsys):
    (tmp_path / "photos").mkdir()
    for i in range(2):
        photo(tmp_path / "photos" / f"p{i}.png")
    written = run_script(
        "upscale_folder.py",
        [str(tmp_path / "photos"), str(tmp_path / "out"), "--preset", "portrait", *FAST],
        monkeypatch,
    )
    assert [p.name for p in written] == ["p0_portrait.png", "p1_portrait.png"]
    assert Image.open(written[0]).size == (128, 96)
    assert capsys.readouterr().out.split() == [str(p) for p in written]


def test_inpaint_with_a_mask(models, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SDENHANCE_INPAINT_MODEL", models["sd15-inpaint"])
    src = photo(tmp_path / "cat.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[16:32, 24:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = run_script(
        "inpaint_mask.py",
        [
            str(src),
            str(tmp_path / "mask.png"),
            str(tmp_path / "out.png"),
            "--prompt",
            "a red ball",
            "--steps",
            "2",
        ],
        monkeypatch,
    )
    before, after = np.asarray(Image.open(src)), np.asarray(Image.open(out))
    assert after.shape == before.shape
    assert np.array_equal(before[:4], after[:4])  # far from the mask: bit-identical
    assert "repainted" in capsys.readouterr().out


def test_custom_recipe(tmp_path, monkeypatch):
    src = photo(tmp_path / "cat.png")
    sets = [
        a
        for kv in (
            "steps=2",
            "tile=64",
            "overlap=16",
            "vae_tile=128",
            "upscaler=lanczos",
            "prompt=a cat",
        )
        for a in ("--set", kv)
    ]
    written = run_script("custom_recipe.py", [str(src), *sets], monkeypatch)
    assert written == [tmp_path / "cat_gentle-detail.png"]
    from sdenhance.io.load import read_metadata

    record = read_metadata(written[0]).sdenhance
    assert [s["stage"] for s in record["steps"]] == ["denoise", "upscale", "blend"]
    assert record["steps"][1]["options"]["prompt"].startswith("a cat, fine detail")


def test_the_example_recipe_runs_with_the_cli(tmp_path):
    from typer.testing import CliRunner

    from sdenhance.cli import app

    result = CliRunner().invoke(app, ["recipes", str(EXAMPLES / "gentle-detail.toml")])
    assert result.exit_code == 0 and "texture" in result.stdout
