"""Truthful records: what the infotext and the JSON record say is what ran."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer
from sdenhance.cli import app
from sdenhance.io.load import read_metadata

runner = CliRunner()


def small_photo(path, size=(32, 24)):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_two_step_recipe_records_each_step_and_the_original_size(models, tmp_path, user_home):
    (user_home / "pipelines").mkdir(parents=True)
    (user_home / "pipelines" / "two.toml").write_text(
        '[[steps]]\nstage = "upscale"\n'
        'options = { scale = 2, creativity = 0.5, steps = 4, prompt = "a cat", tile = 64, '
        "overlap = 16 }\n"
        '[[steps]]\nstage = "img2img"\noptions = { strength = 0.25, steps = 4, prompt = "a dog" }\n'
    )
    src = small_photo(tmp_path / "in.png")
    model_args = ["--model", models["sd15"], "--controlnet", models["sd15-controlnet"]]
    out = tmp_path / "out.png"
    result = runner.invoke(
        app, ["run", "two", str(src), *model_args, "--seed", "5", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    record = meta.sdenhance
    assert record["size_in"] == [32, 24] and record["size_out"] == [64, 48]
    first, second = record["steps"]
    assert (first["stage"], first["size_in"], first["size_out"]) == ("upscale", [32, 24], [64, 48])
    assert (second["stage"], second["size_in"], second["size_out"]) == (
        "img2img",
        [64, 48],
        [64, 48],
    )
    assert first["options"]["creativity"] == 0.5 and first["options"]["prompt"] == "a cat"
    assert second["options"]["strength"] == 0.25 and second["options"]["prompt"] == "a dog"
    assert first["generative"] and second["generative"] and "tiles" in first
    params = meta.parameters
    assert params["Original size"] == "32x24" and params["Size"] == "64x48"
    assert params["Stages"] == "upscale > img2img"
    # the step that changed the image most is the one the A1111 fields describe
    assert params["Main step"] == "1 upscale"
    assert params["Denoising strength"] == "0.5" and params["Steps"] == "4"
    assert params["Prompt"] == "a cat" and params["Seed"] == "5"


def test_creativity_0_records_only_the_upscaler_and_sizes(tmp_path):
    srcs = [small_photo(tmp_path / f"in{i}.png") for i in range(2)]
    args = ["upscale", *map(str, srcs), "--creativity", "0", "--upscaler", "lanczos"]
    args += ["--prompt", "a cat", "--blend", "0.5", "--color-fix", "lab", "-o", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # said once for the whole batch, naming each option that did nothing
    warnings = [ln for ln in result.stderr.splitlines() if "no effect" in ln]
    assert len(warnings) == 1, result.stderr
    for flag in ("--prompt", "--blend", "--color-fix"):
        assert flag in warnings[0]
    meta = read_metadata(tmp_path / "o" / "in0_upscale.png")
    (step,) = meta.sdenhance["steps"]
    assert step["options"] == {"scale": 2.0, "creativity": 0.0, "upscaler": "lanczos"}
    assert step["generative"] is False and "seed" not in meta.sdenhance
    assert "models" not in meta.sdenhance and meta.prompt is None
    params = meta.parameters
    assert params["Postprocess upscale by"] == "2" and params["Postprocess upscaler"] == "Lanczos"
    assert params["Size"] == "64x48" and params["Original size"] == "32x24"
    for claim in ("Steps", "Sampler", "CFG scale", "ControlNet 0", "Color fix", "Model", "Blend"):
        assert claim not in params, claim


def test_api_warns_with_keyword_names_and_results_carry_their_record(tmp_path, caplog):
    src = small_photo(tmp_path / "in.png")
    enhancer = Enhancer()
    with caplog.at_level(logging.WARNING, logger="sdenhance"):
        big = enhancer.upscale(src, scale=2, creativity=0, upscaler="lanczos", prompt="x")
    assert [r.getMessage() for r in caplog.records if "no effect" in r.getMessage()] == [
        "no effect: prompt (at creativity 0 only the upscaler runs)"
    ]
    assert big.info["sdenhance"]["steps"][0]["options"]["upscaler"] == "lanczos"
    assert big.info["sdenhance"]["input"]["name"] == "in.png"
    # a result fed to the next call extends its record; the original size stays the input's
    fixed = enhancer.colorfix(big, reference=src, method="adain")
    record = fixed.info["sdenhance"]
    assert [s["stage"] for s in record["steps"]] == ["upscale", "colorfix"]
    assert record["size_in"] == [32, 24] and record["size_out"] == [64, 48]
    out = enhancer.save(fixed, tmp_path / "out.webp")
    assert read_metadata(out).sdenhance["steps"] == record["steps"]
    assert read_metadata(out).parameters["Original size"] == "32x24"


@pytest.mark.parametrize(
    ("command", "extra", "fix", "absent"),
    [
        ("remove", ["--mask", "MASK"], "--no-refine", "--creativity"),
        ("img2img", [], "--model PATH", "--creativity"),
        ("upscale", [], "--creativity 0", "--no-refine"),
    ],
)
def test_model_not_found_names_fixes_the_command_has(tmp_path, command, extra, fix, absent):
    src = small_photo(tmp_path / "in.png")
    mask = np.zeros((24, 32), np.uint8)
    mask[8:16, 8:16] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    extra = [str(tmp_path / "m.png") if a == "MASK" else a for a in extra]
    args = [command, str(src), *extra, "--model", "nobody/nothing", "-o", str(tmp_path / "o.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "nobody/nothing" in result.stderr and fix in result.stderr
    assert absent not in result.stderr


def test_wrong_local_model_path_says_the_folder_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    small_photo(tmp_path / "in.png")
    for spec in ("./models/nope", "models/nope"):
        result = runner.invoke(app, ["img2img", "in.png", "--model", spec, "-o", "o.png"])
        assert result.exit_code == 2
        assert f"model folder {spec} does not exist" in result.stderr
        assert "cache" not in result.stderr and "HF_HUB_OFFLINE" not in result.stderr


def test_api_model_hints_use_keyword_names(tmp_path):
    from sdenhance import SdenhanceError

    src = small_photo(tmp_path / "in.png")
    mask = np.zeros((24, 32), np.uint8)
    mask[8:16, 8:16] = 255
    with pytest.raises(SdenhanceError) as up:
        Enhancer("nobody/nothing").upscale(src)
    assert "model=PATH" in str(up.value) and "creativity=0" in str(up.value)
    assert "--" not in str(up.value)
    with pytest.raises(SdenhanceError) as rm:
        Enhancer("nobody/nothing").remove(src, Image.fromarray(mask))
    assert "refine=False" in str(rm.value) and "--" not in str(rm.value)
