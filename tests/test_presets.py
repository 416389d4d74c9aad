"""Presets: bundled files, validation with file and key named, user folder, CLI, tiny-model runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.cli import common as c
from sdenhance.presets import bundled_dir, join_prompts, list_presets, load_preset, tidy_prompt

BUNDLED = [
    "general",
    "portrait",
    "landscape",
    "old-photo",
    "text",
    "unblur",
    "anime",
    "midjourney-art",
    "product",
]


def write_user(home, name: str, text: str):
    folder = home / "prompts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def test_every_bundled_preset_loads_and_fits_its_stages():
    found = {p.name: (p, source) for p, source in list_presets()}
    assert set(BUNDLED) <= set(found)
    for name in BUNDLED:
        preset, source = found[name]
        assert (
            source == "bundled" and preset.description and preset.prompt and preset.negative_prompt
        )
        assert preset.path == bundled_dir("prompts") / f"{name}.toml"
        up = preset.defaults("upscale")
        assert "strength" not in up and {"creativity", "prompt", "upscaler"} <= set(up)
        i2i = preset.defaults("img2img")
        assert "strength" in i2i and not {"creativity", "color_fix", "blend", "upscaler"} & set(i2i)
        assert "strength" in preset.defaults("inpaint")


def test_bundled_presets_say_what_the_modes_promise():
    assert 0.2 <= load_preset("portrait").creativity <= 0.4
    assert "person" in load_preset("portrait").prompt  # identity-preserving wording
    assert 0.5 <= load_preset("landscape").creativity <= 0.7
    assert load_preset("anime").upscaler == "realesrgan-x4plus-anime"
    text = load_preset("text")
    assert (
        text.creativity <= 0.2
        and "glyph" in text.description + text.prompt
        or "text" in text.prompt
    )


def test_presets_apply_only_to_diffusion_stages():
    with pytest.raises(SdenhanceError, match="cannot apply to the `denoise` stage"):
        load_preset("general").defaults("denoise")


@pytest.mark.parametrize(
    "body,words",
    [
        ("creativty = 0.3\n", ["unknown key `creativty`", "did you mean `creativity`"]),
        ("sharpness = 2\n", ["unknown key `sharpness`", "allowed: name, description, prompt"]),
        ("creativity = 1.5\n", ["`creativity`", "≤ 1.0", "1.5"]),
        ("steps = 'many'\n", ["`steps`", "integer", "'many'"]),
        ("scheduler = 'fastest'\n", ["`scheduler`", "dpmpp-2m-karras"]),
        ("name = 'other'\n", ["`name` is 'other'", "rename one"]),
        ("creativity = \n", ["not valid TOML"]),
    ],
)
def test_bad_user_presets_name_file_key_and_fix(user_home, body, words):
    path = write_user(user_home, "mine", body)
    with pytest.raises(SdenhanceError) as info:
        load_preset("mine")
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message


def test_user_presets_shadow_bundled_and_load_by_path(user_home, tmp_path):
    write_user(user_home, "portrait", 'description = "mine"\ncreativity = 0.25\n')
    found = {p.name: (p, s) for p, s in list_presets()}
    assert found["portrait"][1] == "user" and found["portrait"][0].creativity == 0.25
    assert load_preset("portrait").description == "mine"
    loose = tmp_path / "loose.toml"
    loose.write_text('prompt = "a fox"\nstrength = 0.5\n')
    preset = load_preset(str(loose))
    assert preset.name == "loose" and preset.defaults("img2img") == {
        "prompt": "a fox",
        "strength": 0.5,
    }
    assert preset.defaults("upscale") == {"prompt": "a fox"}


def test_unknown_preset_suggests_a_name_and_the_user_folder(user_home):
    with pytest.raises(
        SdenhanceError, match=r"unknown preset `portait`; did you mean `portrait`\?.*prompts"
    ):
        load_preset("portait")
    with pytest.raises(SdenhanceError, match="preset file not found"):
        load_preset("nowhere/x.toml")


def test_with_preset_is_stage_aware_and_flags_win():
    assert c.with_preset(None, {"steps": 3}) == {"steps": 3}
    up = c.with_preset("portrait", {"creativity": 0.5})
    assert up["creativity"] == 0.5 and up["resemblance"] == 0.8 and "strength" not in up
    i2i = c.with_preset("portrait", {}, stage="img2img")
    assert i2i["strength"] == 0.25 and "creativity" not in i2i


def test_prompt_joining():
    assert join_prompts("a cat", "highly detailed, sharp") == "a cat, highly detailed, sharp"
    assert join_prompts("", "sharp") == "sharp" and join_prompts(None, "") == ""
    assert join_prompts("a cat, sharp", "Sharp, clean") == "a cat, sharp, clean"
    assert tidy_prompt(", highly detailed, , sharp,") == "highly detailed, sharp"


def a1111_png(path, prompt="a red fox in the snow"):
    info = PngInfo()
    info.add_text(
        "parameters",
        f"{prompt}\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1",
    )
    Image.new("RGB", (32, 24), (90, 120, 150)).save(path, pnginfo=info)
    return path


def test_input_prompt_goes_before_the_preset_words(tmp_path):
    from sdenhance.api import build_options
    from sdenhance.io.load import load_image
    from sdenhance.stages import Context

    loaded = load_image(a1111_png(tmp_path / "fox.png"))
    opts = build_options("upscale", c.with_preset("portrait", {}))
    ctx = Context()
    mine = c.use_input_prompt(loaded, opts, ctx)
    assert mine.prompt.startswith("a red fox in the snow, portrait photo")
    assert ctx.record["prompt_source"] == "a1111"
    # its negative prompt goes before the preset's; nothing else changes
    assert (
        mine.negative_prompt.startswith("ugly, ") and opts.negative_prompt in mine.negative_prompt
    )
    unchanged = dataclasses.replace(mine, prompt=opts.prompt, negative_prompt=opts.negative_prompt)
    assert unchanged == opts
    assert c.use_input_prompt(loaded, opts, Context(), enabled=False) is opts
    plain = load_image(tmp_path / "fox.png")
    plain.metadata.parameters = None
    assert c.use_input_prompt(plain, opts, Context()) is opts
    with pytest.raises(SdenhanceError, match="`creativity`"):
        c.item_options(opts, creativity=2.0)
    assert c.item_options(opts, strength=0.1) is opts  # not an upscale option: ignored


def test_cli_lists_and_shows_presets(user_home):
    runner = CliRunner()
    listed = runner.invoke(app, ["presets"])
    assert listed.exit_code == 0, listed.output
    for name in BUNDLED:
        assert name in listed.stdout
    shown = runner.invoke(app, ["presets", "anime", "--json"])
    assert shown.exit_code == 0 and '"upscaler": "realesrgan-x4plus-anime"' in shown.stdout
    table = runner.invoke(app, ["presets", "portrait"])
    assert table.exit_code == 0 and "creativity" in table.stdout and "0.3" in table.stdout
    missing = runner.invoke(app, ["presets", "nope"])
    assert missing.exit_code == 2 and "unknown preset `nope`" in missing.stderr
    bad = write_user(user_home, "broken", "blend = 3\n")
    broken = runner.invoke(app, ["presets"])
    assert broken.exit_code == 2 and str(bad) in broken.stderr and "`blend`" in broken.stderr


def test_every_bundled_preset_runs_on_the_tiny_model(models):
    image = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    tiny = {"steps": 2, "upscaler": "lanczos", "tile": 64, "overlap": 16, "vae_tile": 128}
    enhancer = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"], seed=1)
    for name in BUNDLED:
        preset = load_preset(name)
        up = enhancer.upscale(image, **{**preset.defaults("upscale"), **tiny})
        assert up.size == (128, 96), name
        assert enhancer.last_record["steps"][0]["options"]["creativity"] == preset.creativity
        out = enhancer.img2img(image, **{**preset.defaults("img2img"), "steps": 2})
        assert out.size == image.size, name


def test_cli_upscale_takes_a_preset(models, tmp_path):
    src = tmp_path / "in.png"
    Image.new("RGB", (64, 48), (200, 90, 40)).save(src)
    result = CliRunner().invoke(
        app,
        [
            "upscale",
            str(src),
            "--preset",
            "landscape",
            "--model",
            models["sd15"],
            "--controlnet",
            models["sd15-controlnet"],
            "--steps",
            "2",
            "--upscaler",
            "lanczos",
            "--tile",
            "64",
            "--overlap",
            "16",
            "--seed",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    from sdenhance.io.load import read_metadata

    options = read_metadata(tmp_path / "in_upscale.png").sdenhance["steps"][0]["options"]
    assert (
        options["creativity"] == 0.6
        and options["steps"] == 2
        and options["prompt"].startswith("landscape")
    )


def test_pyproject_ships_the_bundled_folders_as_package_data():
    import tomllib

    root = bundled_dir("prompts").parent
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    for kind in ("prompts", "pipelines"):
        package = f"sdenhance.data.{kind}"
        assert package in tool["packages"] and tool["package-dir"][package] == kind
        assert tool["package-data"][package] == ["*.toml"]
        assert list((root / kind).glob("*.toml"))


def test_bundled_dir_reads_an_installed_namespace_package(tmp_path, monkeypatch):
    import importlib.resources
    from importlib.resources.readers import MultiplexedPath

    folder = tmp_path / "site" / "sdenhance" / "data" / "prompts"
    folder.mkdir(parents=True)
    (folder / "general.toml").write_text('description = "x"\n')
    monkeypatch.setattr(importlib.resources, "files", lambda name: MultiplexedPath(folder))
    assert bundled_dir("prompts") == folder
