"""LoRAs on the tiny models: effect, weight, layouts, scoping, families, names, records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdenhance import Enhancer, SdenhanceError
from sdenhance.testing.networks import save_lora

FAST = {"strength": 0.6, "steps": 3, "seed": 3, "prompt": "a photo of a cat"}


def arr(img):
    return np.asarray(img, dtype=np.int16)


@pytest.fixture
def lora_dir(user_home):
    folder = user_home / "loras"
    save_lora(folder / "detail.safetensors", "sd15", "kohya", seed=1)
    save_lora(folder / "style.safetensors", "sd15", "kohya", seed=2)
    save_lora(folder / "detail-diffusers.safetensors", "sd15", "diffusers", seed=1)
    save_lora(folder / "xl.safetensors", "sdxl", "kohya", seed=1)
    save_lora(folder / "xl-diffusers.safetensors", "sdxl", "diffusers", seed=1)
    return folder


def snapshot(pipe):
    return {
        f"{name}.{key}": value.clone()
        for name in ("unet", "text_encoder", "text_encoder_2")
        if getattr(pipe, name, None) is not None
        for key, value in getattr(pipe, name).state_dict().items()
    }


def hooks(pipe):
    return sum(
        len(m._forward_hooks)
        for name in ("unet", "text_encoder", "text_encoder_2")
        if getattr(pipe, name, None) is not None
        for m in getattr(pipe, name).modules()
    )


def test_weight_one_changes_zero_does_not_and_two_combine(models, photo, lora_dir):
    enh = Enhancer(models["sd15"])
    base = arr(enh.img2img(photo, **FAST))
    one = arr(enh.img2img(photo, loras=("detail:1",), **FAST))
    zero = arr(enh.img2img(photo, loras=("detail:0",), **FAST))
    other = arr(enh.img2img(photo, loras=("style",), **FAST))
    both = arr(enh.img2img(photo, loras=("detail", "style:1.0"), **FAST))
    assert np.abs(one - base).mean() > 1.0
    assert np.array_equal(zero, base)
    assert not np.array_equal(both, one) and not np.array_equal(both, other)
    assert enh.last_record["loras"][0]["name"] == "detail"


def test_components_are_bit_identical_after_a_lora_call(models, photo, lora_dir):
    enh = Enhancer(models["sd15"])
    before_run = arr(enh.img2img(photo, **FAST))
    pipe = enh.engine.img2img()
    before, own_hooks = snapshot(pipe), hooks(pipe)
    enh.img2img(photo, loras=("detail:0.8", "style:-0.5"), **FAST)
    after = snapshot(pipe)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hooks(pipe) == own_hooks  # the library's own hooks only
    # the next call without LoRA gives what a freshly loaded model gives
    assert np.array_equal(arr(enh.img2img(photo, **FAST)), before_run)
    assert np.array_equal(arr(Enhancer(models["sd15"]).img2img(photo, **FAST)), before_run)


def test_a_prompt_tag_equals_the_option(models, photo, lora_dir):
    enh = Enhancer(models["sd15"])
    tagged = enh.img2img(photo, **{**FAST, "prompt": "a photo of a cat <lora:detail:0.7>"})
    assert enh.last_record["loras"] == [
        {"name": "detail", "weight": 0.7, "hash": enh.last_record["loras"][0]["hash"]}
    ]
    option = enh.img2img(photo, loras=("detail:0.7",), **FAST)
    assert np.array_equal(arr(tagged), arr(option))
    by_path = enh.img2img(photo, loras=(f"{lora_dir / 'detail.safetensors'}:0.7",), **FAST)
    assert np.array_equal(arr(by_path), arr(option))


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_kohya_and_diffusers_layouts_give_the_same_pixels(models, photo, lora_dir, family):
    enh = Enhancer(models[family])
    name = "detail" if family == "sd15" else "xl"
    kohya = arr(enh.img2img(photo, loras=(name,), **FAST))
    diffusers = arr(enh.img2img(photo, loras=(f"{name}-diffusers",), **FAST))
    assert np.array_equal(kohya, diffusers)
    assert np.abs(kohya - arr(enh.img2img(photo, **FAST))).mean() > 1.0


def test_a_lora_of_the_other_family_is_a_clear_error(models, photo, lora_dir):
    with pytest.raises(SdenhanceError, match="does not fit this SD 1.5 model.*SDXL"):
        Enhancer(models["sd15"]).img2img(photo, loras=("xl",), **FAST)
    with pytest.raises(SdenhanceError, match="does not fit this SDXL model.*SD 1.5"):
        Enhancer(models["sdxl"]).img2img(photo, loras=("detail",), **FAST)


def test_lookup_errors_and_pickles(models, photo, lora_dir, tmp_path, monkeypatch):
    enh = Enhancer(models["sd15"])
    with pytest.raises(SdenhanceError, match="LoRA `nothere` not found.*loras"):
        enh.img2img(photo, loras=("nothere",), **FAST)
    # SDENHANCE_LORA_DIR is searched first
    other = tmp_path / "elsewhere"
    save_lora(other / "detail.safetensors", "sd15", "kohya", seed=5)
    monkeypatch.setenv("SDENHANCE_LORA_DIR", str(other))
    moved = arr(enh.img2img(photo, loras=("detail",), **FAST))
    monkeypatch.delenv("SDENHANCE_LORA_DIR")
    assert not np.array_equal(moved, arr(enh.img2img(photo, loras=("detail",), **FAST)))
    # a pickle: refused unless allowed, then read weights-only with the same effect
    from safetensors.torch import load_file

    pickled = tmp_path / "detail.pt"
    torch.save(load_file(str(lora_dir / "detail.safetensors")), pickled)
    with pytest.raises(SdenhanceError, match="pickle.*refused"):
        enh.img2img(photo, loras=(str(pickled),), **FAST)
    allowed = Enhancer(models["sd15"], allow_pickle=True)
    assert np.array_equal(
        arr(allowed.img2img(photo, loras=(str(pickled),), **FAST)),
        arr(enh.img2img(photo, loras=("detail",), **FAST)),
    )


def test_bad_lora_options_fail_before_loading(photo):
    enh = Enhancer("nobody/missing")
    with pytest.raises(SdenhanceError, match="`loras` entries"):
        enh.img2img(photo, loras=("",), **FAST)
    with pytest.raises(SdenhanceError, match="`clip_skip`"):
        enh.img2img(photo, clip_skip=0, **FAST)


def test_every_generative_stage_applies_loras(models, photo, lora_dir):
    from PIL import Image

    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (20, 20, 60, 60))
    enh = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"])
    up = {"scale": 1.0, "creativity": 0.5, "steps": 2, "seed": 1, "prompt": "cat"}
    inp = {"strength": 0.8, "steps": 2, "seed": 1, "prompt": "cat"}
    for run in (
        lambda **kw: enh.upscale(photo, **up, **kw),
        lambda **kw: enh.inpaint(photo, mask, **inp, **kw),
    ):
        assert not np.array_equal(arr(run()), arr(run(loras=("detail",))))
        assert enh.last_record["loras"][0]["name"] == "detail"


def test_missing_lora_named_by_an_input_is_a_warning(models, tmp_path, lora_dir):
    from PIL import Image, PngImagePlugin
    from typer.testing import CliRunner

    from sdenhance.cli import app

    src = tmp_path / "in.png"
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a cat <lora:detail:0.5> <lora:gone:1>\nNegative prompt: ugly, EasyNegative\n"
        'Steps: 20, Sampler: Euler, Seed: 1, TI hashes: "EasyNegative: 123"',
    )
    Image.new("RGB", (64, 64), (120, 90, 60)).save(src, pnginfo=info)
    out = tmp_path / "out.png"
    args = ["img2img", str(src), "-o", str(out), "--model", models["sd15"], "--steps", "2"]
    result = CliRunner().invoke(app, [*args, "--seed", "1", "--strength", "0.5"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "LoRA `gone`, which is not installed" in said
    assert "embedding `EasyNegative`, which is not installed" in said
    from sdenhance.io.load import read_metadata

    record = read_metadata(out).sdenhance
    assert [entry["name"] for entry in record["loras"]] == ["detail"]
    step = record["steps"][0]["options"]
    assert "ugly" in step["negative_prompt"] and "<lora:detail:0.5>" in step["prompt"]
    assert "gone" not in step["prompt"]


def test_a_prompt_tag_never_names_a_file(models, photo, lora_dir):
    tag = f"a cat <lora:{lora_dir / 'detail.safetensors'}:1>"
    with pytest.raises(SdenhanceError, match="must name a LoRA in the LoRA folders"):
        Enhancer(models["sd15"]).img2img(photo, **{**FAST, "prompt": tag})
