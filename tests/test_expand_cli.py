"""`sdenhance expand` end to end: output and exit codes, `run --from` reproducing an expansion
bit-identically, and `expand` then `upscale` as a recipe."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer
from sdenhance.cli import app
from sdenhance.io.load import read_metadata
from sdenhance.recipes import run_recipe


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


@pytest.fixture
def photo_file(tmp_path, photo):
    photo.save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def test_cli_expands_and_reruns_bit_identically(models, photo_file, photo) -> None:
    out = photo_file.parent / "out.png"
    made = cli(
        "expand", str(photo_file), "--right", "40", "--top", "8", "--model", models["sd15"],
        "--steps", "2", "--seed", "5", "--prompt", "a cat on a sofa", "-o", str(out),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.stdout.strip() == str(out)
    got = pixels(out)
    assert got.shape == (88, 136, 3)
    assert np.array_equal(got[41:, :65], np.asarray(photo, np.int16)[33:, :65])  # beyond the band
    record = read_metadata(out).sdenhance
    assert record["seed"] == 5 and record["steps"][0]["stage"] == "expand"
    assert record["expand"]["box"] == [0, 8, 96, 88]
    again = cli("run", "--from", str(out), "-o", str(photo_file.parent / "again.png"))
    assert again.exit_code == 0, again.output
    assert np.array_equal(pixels(photo_file.parent / "again.png"), got)
    other = cli("run", "--from", str(out), "--seed", "6", "-o", str(photo_file.parent / "o.png"))
    assert other.exit_code == 0 and not np.array_equal(pixels(photo_file.parent / "o.png"), got)


def test_cli_writes_the_default_name_and_keeps_alpha(photo_file, photo) -> None:
    rgba = photo.convert("RGBA")
    a = np.full((80, 96), 255, np.uint8)
    a[:, :8] = 0
    rgba.putalpha(Image.fromarray(a))
    rgba.save(photo_file.parent / "cut.png")
    result = cli("expand", str(photo_file.parent / "cut.png"), "--aspect", "2:1", "-s", "0")
    assert result.exit_code == 0, result.output
    out = Image.open(photo_file.parent / "cut_expand.png")
    assert out.mode == "RGBA" and out.size == (160, 80)
    assert np.array_equal(np.asarray(out)[:, 32:128, 3], a)  # centred: 32 px each side
    assert np.asarray(out)[:, :32, 3].min() == 255


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "expand needs a new size"),
        (["--right", "8", "--aspect", "16:9"], "got --left/--right/--top/--bottom and --aspect"),
        (["--aspect", "wide"], "`aspect` must be W:H"),
        (["--width", "50"], "smaller than the image"),
        (["--right", "65535", "--bottom", "65535"], "over the limit"),
        (["--right", "8", "--seam", "300"], "`seam`"),
        (["--right", "8", "--fill", "smear"], "`fill`"),
        (["--width", "200", "--anchor", "middle"], "`anchor`"),
        (["--left", "0"], "--left/--right/--top/--bottom"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(photo_file, args, words) -> None:
    result = cli("expand", str(photo_file), "--model", "nobody/missing", *args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr and result.stderr.startswith("error:")
    assert "Traceback" not in result.output
    assert not (photo_file.parent / "photo_expand.png").exists()


def test_cli_seam_too_deep_for_the_model_exits_2(models, photo_file) -> None:
    result = cli(
        "expand", str(photo_file), "--right", "8", "--seam", "40", "--model", models["sd15"],
        "--steps", "2",
    )  # fmt: skip
    assert result.exit_code == 2 and "`seam` must be at most half" in result.stderr


def test_cli_warns_that_anchor_has_no_effect_with_px_per_side(photo_file) -> None:
    result = cli("expand", str(photo_file), "--right", "8", "--anchor", "top", "-s", "0")
    assert result.exit_code == 0, result.output
    assert "no effect: --anchor (px per side place the original" in result.stderr
    fill = cli("expand", str(photo_file), "--right", "8", "-s", "1", "--fill", "mirror",
               "--model", "nobody/missing", "-o", str(photo_file.parent / "o.png"))  # fmt: skip
    assert fill.exit_code == 2  # the model is missing, but the warning came first
    said = " ".join(fill.stderr.split())
    assert "no effect: --fill (" in said and "at strength 1 the new area is painted" in said


RECIPE = """
description = "expand, then upscale 2x"
[[steps]]
stage = "expand"
options = { right = 32, steps = 2, prompt = "$prompt" }
[[steps]]
stage = "upscale"
options = { scale = 2, creativity = 0.3, steps = 2, upscaler = "lanczos", tile = 64, overlap = 16 }
"""


def test_expand_then_upscale_as_a_recipe(models, tmp_path, photo) -> None:
    path = tmp_path / "wider.toml"
    path.write_text(RECIPE)
    enh = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"], seed=0)
    out = run_recipe(path, photo, enhancer=enh, overrides={"prompt": "a cat"})
    assert out.size == (256, 160)
    steps = enh.last_record["steps"]
    assert [s["stage"] for s in steps] == ["expand", "upscale"]
    assert steps[0]["size_out"] == [128, 80] and steps[1]["size_out"] == [256, 160]
    photo.save(tmp_path / "photo.png")
    made = cli(
        "run", str(path), str(tmp_path / "photo.png"), "--model", models["sd15"], "--controlnet",
        models["sd15-controlnet"], "--seed", "0", "--set", "prompt=a cat", "-o",
        str(tmp_path / "made.png"),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert np.array_equal(pixels(tmp_path / "made.png"), np.asarray(out, np.int16))
    again = cli("run", "--from", str(tmp_path / "made.png"), "-o", str(tmp_path / "again.png"))
    assert again.exit_code == 0, again.output
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "made.png"))
