"""`--controlnet none`: tiled upscaling with the checkpoint alone (tile img2img).

Its latents equal diffusers' plain img2img pipeline (tests/test_parity.py); here: it needs no
ControlNet anywhere (none is resolved, so an empty offline cache is fine), an explicit
`resemblance` is refused, presets and recipes (which carry one) run, and reruns reproduce it.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.io.load import read_metadata

FAST = ["--upscaler", "lanczos", "--tile", "64", "--overlap", "16", "--steps", "2"]


@pytest.fixture
def small(photo) -> Image.Image:
    return photo.resize((32, 32), Image.Resampling.LANCZOS)


@pytest.fixture
def src(tmp_path, small):
    path = tmp_path / "in.png"
    small.save(path)
    return path


def upscale_cli(*args: str):
    return CliRunner().invoke(app, ["upscale", *args])


def test_no_controlnet_is_resolved_or_loaded(models, small):
    """The family's default ControlNet is not in the (empty, offline) cache: resolving it
    would fail, so a result proves nothing looked for one."""
    enh = Enhancer(models["sd15"], controlnet="none")
    out = enh.upscale(small, seed=1, scale=2, upscaler="lanczos", tile=64, overlap=16, steps=2)
    assert out.size == (64, 64)
    assert enh.engine.controlnet is None and "controlnet" not in enh.engine._resolved
    assert enh.last_record["models"]["controlnet"] == "none"
    with pytest.raises(SdenhanceError, match="not found"):
        _ = Enhancer(models["sd15"]).engine.controlnet_model  # control: the default is absent


def test_none_from_the_environment_and_the_config_file(models, src, tmp_path, monkeypatch):
    monkeypatch.setenv("SDENHANCE_CONTROLNET", "none")
    env = upscale_cli(str(src), "--model", models["sd15"], *FAST, "-o", str(tmp_path / "a.png"))
    assert env.exit_code == 0, env.output
    monkeypatch.delenv("SDENHANCE_CONTROLNET")
    config = tmp_path / "config.toml"
    config.write_text('controlnet = "None"\n')
    monkeypatch.setenv("SDENHANCE_CONFIG", str(config))
    cfg = upscale_cli(str(src), "--model", models["sd15"], *FAST, "-o", str(tmp_path / "b.png"))
    assert cfg.exit_code == 0, cfg.output
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    assert a.shape == (64, 64, 3) and b.shape == a.shape


def test_resemblance_is_refused_before_any_work(models, src, tmp_path):
    out = tmp_path / "out.png"
    args = ["--model", models["sd15"], "--controlnet", "none", "--resemblance", "0.8"]
    result = upscale_cli(str(src), *args, *FAST, "-o", str(out))
    assert result.exit_code == 2
    assert "--resemblance" in result.stderr and "--controlnet none" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and not out.exists()
    with pytest.raises(SdenhanceError, match="--controlnet none"):
        Enhancer(models["sd15"], controlnet="none").upscale(src, resemblance=0.6)


def test_presets_and_recipes_run_without_a_controlnet(models, src, tmp_path):
    """Their resemblance is a default for ControlNet users: unused here, not an error."""
    preset = upscale_cli(
        str(src), "--model", models["sd15"], "--controlnet", "none", "--preset", "portrait",
        *FAST, "-o", str(tmp_path / "preset.png"),
    )  # fmt: skip
    assert preset.exit_code == 0, preset.output
    runner = CliRunner()
    recipe = ["run", "text-crisp", str(src), "--model", models["sd15"], "--controlnet", "none"]
    sets = ["upscale.upscaler=lanczos", "upscale.tile=64", "upscale.overlap=16", "steps=8"]
    made = tmp_path / "recipe.png"
    result = runner.invoke(
        app, [*recipe, *[a for s in sets for a in ("--set", s)], "-o", str(made)]
    )
    assert result.exit_code == 0, result.output
    meta = read_metadata(made)
    assert meta.sdenhance["models"]["controlnet"] == "none"
    assert "ControlNet 0" not in meta.parameters and "Model" in meta.parameters
    refused = runner.invoke(app, [*recipe, "--set", "resemblance=0.9", "-o", str(made)])
    assert refused.exit_code == 2 and "--resemblance" in refused.stderr
    # a rerun reproduces it without a ControlNet, bit for bit
    again = tmp_path / "again.png"
    rerun = runner.invoke(app, ["run", "--from", str(made), str(src), "-o", str(again)])
    assert rerun.exit_code == 0, rerun.output
    assert np.array_equal(np.asarray(Image.open(made)), np.asarray(Image.open(again)))
