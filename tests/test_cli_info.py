"""`sdenhance info`: text and JSON reports, errors as one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from sdenhance import __version__
from sdenhance.cli import app
from sdenhance.io.save import save_image

DATA = Path(skimage.__file__).parent / "data"

A1111 = """a cat on a windowsill, [soft light], :3 expression
Negative prompt: blurry, (lowres:1.2)
Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 96x80, Model hash: 45dee52b, Lora hashes: "catlora: 0a1b2c3d4e5f\""""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cat() -> Image.Image:
    return Image.open(DATA / "chelsea.png").convert("RGB").crop((100, 50, 196, 130))


def test_info_text_report(tmp_path, runner, cat):
    info = PngInfo()
    info.add_text("parameters", A1111)
    cat.save(tmp_path / "cat.png", pnginfo=info)
    result = runner.invoke(app, ["info", str(tmp_path / "cat.png")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "size:     96x80" in out and "format:   PNG" in out and "mode:     RGB" in out
    assert "alpha:    no" in out and "metadata: a1111" in out
    # prompt text is printed verbatim: no markup or emoji codes eaten
    assert "prompt:   a cat on a windowsill, [soft light], :3 expression" in out
    assert "negative prompt: blurry, (lowres:1.2)" in out
    assert "  Sampler: Euler a" in out and "  Lora hashes: catlora: 0a1b2c3d4e5f" in out


def test_info_json_is_one_object(tmp_path, runner, cat):
    rgba = cat.convert("RGBA")
    rgba.putalpha(200)
    record = {
        "seed": 5,
        "prompt": "tabby cat, [detailed fur]",
        "steps": [{"stage": "upscale", "options": {"scale": 2, "creativity": 0.3}}],
    }
    path = save_image(rgba, tmp_path / "out.webp", metadata=record)
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["width"], data["height"], data["format"], data["alpha"]) == (96, 80, "WEBP", True)
    assert data["prompt"] == "tabby cat, [detailed fur]" and data["source"] == "sdenhance"
    assert data["sdenhance"] == {"version": __version__, **record}
    assert data["parameters"]["Denoising strength"] == "0.3" and data["parameters"]["Seed"] == "5"
    assert data["comfy_prompt"] is None and data["notes"] == []


def test_info_shows_notes_and_source_mode(tmp_path, runner):
    values = np.linspace(0, 65535, 64 * 48, dtype=np.uint16).reshape(48, 64)
    Image.fromarray(values).save(tmp_path / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    result = runner.invoke(app, ["info", str(tmp_path / "deep.png"), "--json"])
    data = json.loads(result.stdout)
    assert data["mode"].startswith("I;16") and "16-bit scaled to 8-bit" in data["notes"]
    Image.open(DATA / "astronaut.png").crop((0, 0, 40, 20)).save(tmp_path / "rot.jpg", exif=exif)
    result = runner.invoke(app, ["info", str(tmp_path / "rot.jpg")])
    assert (
        "size:     20x40" in result.stdout
        and "note:     applied EXIF orientation 6" in result.stdout
    )


def test_info_comfyui_and_sdenhance_sections(tmp_path, runner, cat):
    info = PngInfo()
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"positive": ["6", 0], "negative": ["7", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog"}},
    }
    info.add_text("prompt", json.dumps(graph))
    cat.save(tmp_path / "comfy.png", pnginfo=info)
    out = runner.invoke(app, ["info", str(tmp_path / "comfy.png")]).stdout
    assert "prompt:   a lighthouse" in out and "negative prompt: fog" in out
    assert "comfyui:  prompt graph present" in out
    path = save_image(
        cat, tmp_path / "ours.png", metadata={"seed": 9, "models": {"model": "m.safetensors"}}
    )
    out = runner.invoke(app, ["info", str(path)]).stdout
    assert "sdenhance record:" in out and '"seed": 9' in out and "  Model: m" in out


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "input not found"),
        (lambda p: Image.new("RGB", (8, 8)).save(p, format="GIF"), "GIF images are not supported"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "cannot read"),
    ],
)
def test_info_errors_are_one_line_exit_2(tmp_path, runner, make, expected):
    path = tmp_path / "bad.png"
    make(path)
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert expected in result.stderr and result.stderr.count("\n") == 1


def test_doctor_reports_device_extras_and_upscalers():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device"] == "cpu" and report["attention"] == "sdpa"
    assert "realesrgan-x4plus" in report["upscalers"]
    assert report["extras"]["spandrel"] in (True, False)
    text = CliRunner().invoke(app, ["doctor"])
    assert text.exit_code == 0 and "extras" in text.stdout and "default sd15" in text.stdout
