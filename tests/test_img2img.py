"""img2img stage, API and CLI on tiny models: determinism and sensitivity to prompt/strength."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.ops.sizes import effective_steps
from sdenhance.stages.img2img import pad_to_multiple


def arr(img):
    return np.asarray(img, dtype=np.int16)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_same_seed_same_output_and_changes_follow_options(models, photo, family):
    enh = Enhancer(models[family])
    a = enh.img2img(photo, prompt="a cat", strength=0.5, steps=4, seed=1)
    b = enh.img2img(photo, prompt="a cat", strength=0.5, steps=4, seed=1)
    assert a.size == photo.size
    assert np.array_equal(arr(a), arr(b))
    for change in ({"prompt": "a dog"}, {"strength": 0.8}, {"seed": 2}):
        kw = {"prompt": "a cat", "strength": 0.5, "steps": 4, "seed": 1, **change}
        c = enh.img2img(photo, **kw)
        assert np.abs(arr(c) - arr(a)).mean() > 0.5, change


def test_strength_zero_returns_the_input_without_loading(photo):
    enh = Enhancer("nobody/missing")  # would fail to resolve if it loaded
    out = enh.img2img(photo, strength=0.0)
    assert np.array_equal(arr(out), arr(photo))


def test_odd_sizes_and_alpha_are_kept(models):
    rgba = Image.new("RGBA", (37, 21), (200, 100, 50, 255))
    rgba.putpixel((3, 4), (0, 0, 0, 0))
    out = Enhancer(models["sd15"]).img2img(rgba, strength=0.3, steps=3, seed=0)
    assert out.size == (37, 21) and out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[:, :, 3], np.asarray(rgba)[:, :, 3])


def test_bad_options_fail_before_loading(photo):
    enh = Enhancer("nobody/missing")
    with pytest.raises(SdenhanceError, match="`strength`.*1.5"):
        enh.img2img(photo, strength=1.5)
    with pytest.raises(SdenhanceError, match="`scheduler`"):
        enh.img2img(photo, scheduler="fastest")
    with pytest.raises(SdenhanceError, match="did you mean `strength`"):
        enh.img2img(photo, strenght=0.3)


def test_helpers():
    img = Image.new("RGB", (13, 9))
    padded, size = pad_to_multiple(img, 8)
    assert padded.size == (16, 16) and size == (13, 9)
    assert effective_steps(20, 0.01) == 100 and effective_steps(20, 0.5) == 20
    # a computed strength just under 1/5: five steps would truncate to zero denoising steps
    strength = 0.3 * (64 / 96)
    assert strength < 0.2 and effective_steps(2, strength) == 6


def test_cli_img2img_writes_output_with_metadata(models, tmp_path, photo):
    src = tmp_path / "cat.png"
    photo.save(src)
    args = [
        "img2img",
        str(src),
        "--model",
        models["sd15"],
        "--strength",
        "0.5",
        "--steps",
        "2",
        "--prompt",
        "a cat, photo",
        "--seed",
        "5",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "cat_img2img.png"
    assert result.stdout.strip() == str(out)
    from sdenhance.io.load import read_metadata

    meta = read_metadata(out)
    assert meta.sdenhance["seed"] == 5
    assert meta.prompt == "a cat, photo"
    # rerun: skipped (resume), exit 0, file untouched
    mtime = out.stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and out.stat().st_mtime_ns == mtime
    assert "exists" in again.stderr


def test_option_types_are_checked_before_loading(photo):
    enh = Enhancer("nobody/missing")
    with pytest.raises(SdenhanceError, match="`strength` must be a number; got 'high'"):
        enh.img2img(photo, strength="high")
    with pytest.raises(SdenhanceError, match="`steps` must be a whole number"):
        enh.img2img(photo, steps=2.5)
    with pytest.raises(SdenhanceError, match="`prompt` must be text"):
        enh.img2img(photo, prompt=3)


def test_public_exports():
    import sdenhance

    assert (
        callable(sdenhance.run_recipe)
        and callable(sdenhance.load_preset)
        and callable(sdenhance.upscale)
    )
    assert sdenhance.load_preset("portrait").defaults("upscale")["creativity"] <= 0.4
