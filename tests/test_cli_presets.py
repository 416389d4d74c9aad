"""--preset and input-metadata prompts on the generative commands."""

from __future__ import annotations

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.io.load import read_metadata


def test_upscale_preset_sets_the_upscaler_and_flags_win(tmp_path, photo):
    src = tmp_path / "a.png"
    photo.resize((24, 20)).save(src)
    run = CliRunner().invoke(
        app,
        [
            "upscale",
            str(src),
            "--preset",
            "anime",
            "--creativity",
            "0",
            "-o",
            str(tmp_path / "o.png"),
        ],
    )
    assert run.exit_code == 0, run.output
    opts = read_metadata(tmp_path / "o.png").sdenhance["steps"][0]["options"]
    assert opts["upscaler"] == "realesrgan-x4plus-anime" and opts["creativity"] == 0
    run = CliRunner().invoke(
        app,
        [
            "upscale",
            str(src),
            "--preset",
            "anime",
            "--creativity",
            "0",
            "--upscaler",
            "lanczos",
            "-o",
            str(tmp_path / "p.png"),
        ],
    )
    assert (
        read_metadata(tmp_path / "p.png").sdenhance["steps"][0]["options"]["upscaler"] == "lanczos"
    )


@pytest.mark.parametrize("command", ["upscale", "img2img", "inpaint", "facefix"])
def test_unknown_preset_exits_2_before_anything_loads(tmp_path, photo, command):
    src = tmp_path / "a.png"
    photo.save(src)
    extra = ["--mask", str(src)] if command == "inpaint" else []
    run = CliRunner().invoke(app, [command, str(src), "--preset", "no-such-preset", *extra])
    assert run.exit_code == 2 and "no-such-preset" in run.stderr
    assert len(list(tmp_path.iterdir())) == 1


def test_img2img_offers_the_a1111_prompt_of_the_input(models, tmp_path, photo):
    src = tmp_path / "gen.png"
    info = PngInfo()
    info.add_text(
        "parameters",
        "a red fox in snow\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 96x80",
    )
    photo.save(src, pnginfo=info)
    base = [
        "img2img",
        str(src),
        "--model",
        models["sd15"],
        "--strength",
        "0.5",
        "--steps",
        "2",
        "--seed",
        "1",
    ]
    run = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "with.png")])
    assert run.exit_code == 0, run.output
    assert "a red fox in snow" in read_metadata(tmp_path / "with.png").prompt
    run = CliRunner().invoke(app, [*base, "--no-input-prompt", "-o", str(tmp_path / "without.png")])
    assert run.exit_code == 0, run.output
    assert "fox" not in (read_metadata(tmp_path / "without.png").prompt or "")
    run = CliRunner().invoke(app, [*base, "--prompt", "a cat", "-o", str(tmp_path / "given.png")])
    assert read_metadata(tmp_path / "given.png").prompt == "a cat"
    assert Image.open(tmp_path / "given.png").size == photo.size
