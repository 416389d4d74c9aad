"""Checks in the right place: against the model's native tile, and once per batch.

An option or shared mask that is wrong for every input stops the run before any work (exit 2,
one message, nothing written) instead of failing each item (exit 3); one that is wrong for some
inputs only still fails those alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.stages import build_options

FAST = ["--upscaler", "lanczos", "--steps", "2", "--creativity", "0.5"]


@pytest.fixture
def inputs(tmp_path, photo) -> list[str]:
    """Two inputs of the same size in their own folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i, box in enumerate([(0, 0, 32, 32), (40, 20, 72, 52)]):
        path = folder / f"img{i}.png"
        photo.crop(box).save(path)
        paths.append(str(path))
    return paths


def written(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").glob("*.png"))


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# ---------------------------------------------------------------------------------------------
# the overlap against the tile the model will use


def test_options_alone_check_only_a_given_tile():
    build_options("upscale", {"overlap": 512})  # the native tile is not known yet: not refused
    build_options("upscale", {"tile": 1024, "overlap": 512})
    with pytest.raises(SdenhanceError, match="smaller than `tile`"):
        build_options("upscale", {"tile": 512, "overlap": 512})


def test_sdxl_takes_an_overlap_of_half_its_native_tile(models, photo, tmp_path):
    src = tmp_path / "in.png"
    photo.crop((0, 0, 32, 32)).save(src)
    args = ["upscale", str(src), "--model", models["sdxl"], "--controlnet"]
    args += [models["sdxl-controlnet"], *FAST, "-o", str(tmp_path / "out.png")]
    for tile in (["--tile", "1024"], []):  # given, or the SDXL default
        result = invoke(*args, *tile, "--overlap", "512", "--overwrite")
        assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (64, 64)


def test_sd15_refuses_an_overlap_of_its_native_tile(models, photo):
    with pytest.raises(SdenhanceError, match=r"smaller than the tile \(512 px, the model native"):
        Enhancer(models["sd15"], controlnet=models["sd15-controlnet"]).upscale(
            photo, overlap=512, upscaler="lanczos", steps=2
        )


# ---------------------------------------------------------------------------------------------
# once per batch


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--overlap", "512"], "smaller than the tile"),
        (["--controlnet", "none", "--resemblance", "0.5"], "--resemblance"),
        (["--model", "nobody/missing"], "nobody/missing"),
    ],
)
def test_an_upscale_option_wrong_for_every_input_stops_the_batch_once(
    models, inputs, tmp_path, extra, words
):
    args = [
        "upscale",
        *inputs,
        "--model",
        models["sd15"],
        "--controlnet",
        models["sd15-controlnet"],
    ]
    result = invoke(*args, *FAST, *extra, "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 2, result.output
    assert words in result.stderr and result.stderr.count("error:") == 1
    assert written(tmp_path) == []


def test_a_controlnet_of_the_other_family_stops_the_batch_once(models, inputs, tmp_path):
    args = ["upscale", *inputs, "--model", models["sd15"], "--controlnet"]
    result = invoke(*args, models["sdxl-controlnet"], *FAST, "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 2 and result.stderr.count("same family") == 1
    assert written(tmp_path) == []


def save_mask(tmp_path, size, box=None, name="mask.png"):
    mask = np.zeros((size[1], size[0]), np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = 255
    path = tmp_path / name
    Image.fromarray(mask).save(path)
    return str(path)


@pytest.mark.parametrize(
    "command,mask_box,extra,words",
    [
        ("remove", None, [], "mask selects nothing"),
        ("inpaint", None, [], "mask selects nothing"),
        ("inpaint", (10, 10, 14, 14), ["--grow", "-3"], "after `grow`=-3"),
        ("remove", (0, 0, 30, 30), ["--grow", "4"], "covers the whole image"),
    ],
)
def test_a_mask_wrong_for_every_input_stops_the_batch_once(
    models, inputs, tmp_path, command, mask_box, extra, words
):
    mask = save_mask(tmp_path, (32, 32), mask_box)
    args = [command, *inputs, "--mask", mask, "--model", models["sd15"], *extra]
    result = invoke(*args, "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 2, result.output
    assert result.stderr.count(words) == 1 and written(tmp_path) == []


def test_a_mask_of_no_input_size_stops_the_batch_once(inputs, tmp_path):
    mask = save_mask(tmp_path, (40, 30), (5, 5, 20, 20))
    args = ["remove", *inputs, "--mask", mask, "--no-refine", "-o", str(tmp_path / "out") + "/"]
    result = invoke(*args)
    assert result.exit_code == 2 and "matches none of the 2 inputs (32×32)" in result.stderr
    assert written(tmp_path) == []
    stretched = invoke(*args, "--mask-resize")
    assert stretched.exit_code == 0, stretched.output
    assert written(tmp_path) == ["img0_remove.png", "img1_remove.png"]


def test_a_mask_that_fits_some_inputs_fails_only_the_others(inputs, tmp_path, photo):
    other = tmp_path / "in" / "wide.png"
    photo.crop((0, 0, 48, 32)).save(other)
    mask = save_mask(tmp_path, (32, 32), (5, 5, 20, 20))
    args = ["remove", *inputs, str(other), "--mask", mask, "--no-refine"]
    result = invoke(*args, "-o", str(tmp_path / "out") + "/")
    assert result.exit_code == 3, result.output
    assert written(tmp_path) == ["img0_remove.png", "img1_remove.png"]
    assert "does not match" in result.stderr
