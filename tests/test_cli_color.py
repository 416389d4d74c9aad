"""`sdenhance colorfix`, `blend`, `denoise` and `compare` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.io.convert import from_array, to_array
from sdenhance.ops.metrics import delta_e


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def cast(photo: Image.Image, seed: int = 0) -> Image.Image:
    """The photo with a warm cast and a seeded fine texture, as a diffusion pass leaves it."""
    arr = to_array(photo).astype(np.float64)
    noise = np.random.default_rng(seed).normal(0, 0.02, arr.shape[:2])
    return from_array(arr * [1.08, 0.97, 0.82] + [0.04, 0.0, -0.02] + noise[..., None])


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    original = Image.fromarray(data.chelsea()[::4, ::4])  # 113×75
    paths = {"original": tmp_path / "original.png", "diffused": tmp_path / "diffused.png"}
    original.save(paths["original"])
    cast(original).save(paths["diffused"])
    return paths


def test_colorfix_writes_a_corrected_image(files):
    out = files["diffused"].with_name("fixed.png")
    result = run("colorfix", files["diffused"], "--reference", files["original"], "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    original, before, after = (
        to_array(Image.open(p).convert("RGB")) for p in (files["original"], files["diffused"], out)
    )
    assert delta_e(after, original) < 0.5 * delta_e(before, original)
    record = json.loads(Image.open(out).text["sdenhance"])
    assert [(s["stage"], s["options"]) for s in record["steps"]] == [
        ("colorfix", {"method": "local", "strength": 1.0})
    ]
    assert record["reference"] == str(files["original"])


def test_colorfix_default_name_skip_and_overwrite(files):
    args = (
        "colorfix",
        files["diffused"],
        "--reference",
        files["original"],
        "--method",
        "lab",
        "-s",
        "0.5",
    )
    first = run(*args)
    expected = files["diffused"].with_name("diffused_colorfix.png")
    assert first.exit_code == 0, first.output
    assert expected.is_file()
    stamp = expected.stat().st_mtime_ns
    again = run(*args)
    assert again.exit_code == 0
    assert "exists" in again.stderr and expected.stat().st_mtime_ns == stamp
    forced = run(*args, "--overwrite")
    assert forced.exit_code == 0 and forced.stdout.strip() == str(expected)


def test_colorfix_keeps_transparency_and_handles_folders(files, tmp_path):
    rgba = Image.open(files["diffused"]).convert("RGBA")
    rgba.putalpha(200)
    rgba.save(tmp_path / "transparent.png")
    result = run("colorfix", tmp_path, "--reference", files["original"], "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["diffused_colorfix.png", "original_colorfix.png", "transparent_colorfix.png"]
    out = Image.open(tmp_path / "out" / "transparent_colorfix.png")
    assert out.mode == "RGBA" and np.all(np.asarray(out)[..., 3] == 200)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--method", "rgb"),
            "`method` must be one of local, wavelet, lab, hist, adain, none; got 'rgb'",
        ),
        (("--strength", "1.5"), "`strength` must be ≥ 0.0 and ≤ 1.0; got 1.5"),
    ],
)
def test_colorfix_bad_option_exits_2_with_one_line(files, args, message):
    # the option is checked before any image is read: the missing reference is never reached
    result = run("colorfix", files["diffused"], "--reference", "missing.png", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not files["diffused"].with_name("diffused_colorfix.png").exists()


def test_colorfix_missing_reference_exits_2(files):
    result = run(
        "colorfix", files["diffused"], "--reference", files["original"].with_name("nope.png")
    )
    assert result.exit_code == 2
    assert "`--reference`: no such file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_blend_mixes_with_the_resampled_original(files, tmp_path):
    original = Image.open(files["original"])
    enhanced = original.resize((original.width * 2, original.height * 2), Image.Resampling.BICUBIC)
    enhanced = Image.fromarray(255 - np.asarray(enhanced))  # far from the original, to see the mix
    enhanced.save(tmp_path / "enhanced.png")
    out = tmp_path / "blended.png"
    result = run(
        "blend",
        tmp_path / "enhanced.png",
        "--original",
        files["original"],
        "--opacity",
        "0.75",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    blended = Image.open(out)
    assert blended.size == enhanced.size
    from sdenhance.ops.resize import resize

    base = np.clip(resize(to_array(original), enhanced.size, "lanczos"), 0, 1)
    expected = 0.75 * to_array(enhanced) + 0.25 * base
    assert np.abs(to_array(blended) - expected).max() <= 0.5 / 255 + 1e-6


def test_blend_bad_opacity_exits_2(files):
    result = run("blend", files["diffused"], "--original", files["original"], "--opacity", "2")
    assert result.exit_code == 2
    assert "`opacity` must be ≥ 0.0 and ≤ 1.0; got 2.0" in result.stderr


def test_denoise_removes_noise(tmp_path):
    clean = data.astronaut()[::4, ::4]
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 15, clean.shape), 0, 255).astype(
        np.uint8
    )
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    result = run("denoise", tmp_path / "noisy.png", "--strength", "0.4")
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "noisy_denoise.png"))
    assert peak_signal_noise_ratio(clean, out) > peak_signal_noise_ratio(clean, noisy) + 1.0
    bad = run("denoise", tmp_path / "noisy.png", "--method", "median", "--overwrite")
    assert bad.exit_code == 2
    assert "`method` must be one of nlmeans, bilateral; got 'median'" in bad.stderr


def test_compare_json_matches_the_metrics(files):
    from sdenhance.ops.metrics import compare

    result = run("compare", files["original"], files["diffused"], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = compare(
        to_array(Image.open(files["original"])), to_array(Image.open(files["diffused"]))
    )
    assert report["psnr"] == pytest.approx(expected["psnr"], abs=1e-12)
    assert report["ssim"] == pytest.approx(expected["ssim"], abs=1e-12)
    assert report["delta_e"] == pytest.approx(expected["delta_e"], abs=1e-12)
    assert report["resampled"] is False and report["identical"] is False
    assert report["size_a"] == report["size_b"] == [113, 75]


def test_compare_identical_and_resampled(files, tmp_path):
    same = json.loads(run("compare", files["original"], files["original"], "--json").stdout)
    assert (
        same["psnr"] is None
        and same["identical"] is True
        and same["ssim"] == 1.0
        and same["delta_e"] == 0.0
    )

    Image.open(files["diffused"]).resize((56, 37)).save(tmp_path / "small.png")
    text = run("compare", files["original"], tmp_path / "small.png")
    assert text.exit_code == 0, text.output
    assert "resampled from 56×37 to A's 113×75" in text.stderr
    lines = text.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["PSNR", "SSIM", "dE2000"]
    report = json.loads(run("compare", files["original"], tmp_path / "small.png", "--json").stdout)
    assert report["resampled"] is True and report["size_b"] == [56, 37]


def test_compare_missing_file_exits_2(files):
    result = run("compare", files["original"], "nope.png")
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_help_names_every_option_with_its_range():
    for command, words in {
        "colorfix": [
            "--reference",
            "--method",
            "local",
            "wavelet",
            "--strength",
            "0–1",
            "Colour",
            "Output",
        ],
        "blend": ["--original", "--opacity", "0–1"],
        "denoise": ["--strength", "--method", "nlmeans"],
        "compare": ["--json", "PSNR", "SSIM"],
    }.items():
        result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
        assert result.exit_code == 0
        for word in words:
            assert word in result.stdout, (command, word)
