"""Masked inpainting on tiny models: exactness outside the blend mask, crop geometry, families,
fills, alpha and the command line. Tiny models paint noise; the tests check geometry and bits."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.models.config import native_resolution
from sdenhance.ops.inpaint_fill import blur_fill
from sdenhance.ops.masks import feather, grow
from sdenhance.ops.sizes import latent_cover, processing_size

FAST = {"steps": 2, "seed": 1}


@pytest.fixture
def scene() -> Image.Image:
    """A 256×192 real photo: large enough that crops are smaller than the image."""
    return Image.fromarray(data.chelsea()).crop((60, 40, 316, 232))


def square(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean (H, W) mask selecting the half-open `box`."""
    mask = np.zeros((size[1], size[0]), bool)
    mask[box[1] : box[3], box[0] : box[2]] = True
    return mask


def as_mask(selected: np.ndarray) -> Image.Image:
    return Image.fromarray(selected.astype(np.uint8) * 255, "L")


def blend_of(selected: np.ndarray, grow_px: int = 4, feather_px: int = 8) -> np.ndarray:
    """The stage's blend mask for these settings (defaults: grow 4, feather 8)."""
    return feather(grow(selected.astype(np.float32), grow_px), feather_px)


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def assert_exact_outside(out: Image.Image, src: Image.Image, blend: np.ndarray) -> None:
    keep = blend == 0
    assert out.size == src.size
    assert np.array_equal(arr(out)[keep], arr(src)[keep])


def changed(out: Image.Image, src: Image.Image, where: np.ndarray) -> float:
    return float(np.abs(arr(out) - arr(src))[where].mean())


# --- exactness and change ----------------------------------------------------------------------


@pytest.mark.parametrize("area", ["masked", "whole"])
@pytest.mark.parametrize("fill", ["original", "blur", "telea", "noise"])
def test_unmasked_pixels_are_bit_identical(models, photo, area, fill) -> None:
    selected = square(photo.size, (40, 30, 60, 50))
    out = Enhancer(models["sd15"]).inpaint(
        photo, as_mask(selected), prompt="a cat", area=area, fill=fill, **FAST
    )
    blend = blend_of(selected)
    assert_exact_outside(out, photo, blend)
    assert changed(out, photo, grow(selected.astype(np.float32), 4) > 0) > 5.0
    assert np.any(arr(out)[(blend > 0) & (blend < 1)] != arr(photo)[(blend > 0) & (blend < 1)])


@pytest.mark.parametrize(
    ("family", "extra"),
    [("sdxl", {}), ("sd15-9ch", {"inpaint_model": "sd15-inpaint"})],
)
def test_sdxl_and_a_nine_channel_inpainting_model(models, photo, family, extra):
    selected = square(photo.size, (10, 50, 30, 70))
    base = "sdxl" if family == "sdxl" else "sd15"
    enh = Enhancer(models[base], **{k: models[v] for k, v in extra.items()})
    out = enh.inpaint(photo, as_mask(selected), prompt="grass", **FAST)
    assert_exact_outside(out, photo, blend_of(selected))
    assert changed(out, photo, selected) > 5.0
    described = enh.last_record["models"]
    if extra:  # the dedicated model did the work; the base model never had to load
        assert enh.engine.inpaint().unet.config.in_channels == 9
        assert described["inpaint_model"] == models["sd15-inpaint"]
        assert described["inpaint_model_family"] == "sd15" and "model" not in described
    else:
        assert described["model"] == models["sdxl"] and described["model_family"] == "sdxl"


def test_same_seed_same_output_other_seed_other_output(models, photo) -> None:
    enh = Enhancer(models["sd15"])
    mask = as_mask(square(photo.size, (30, 20, 70, 60)))
    a = enh.inpaint(photo, mask, prompt="a dog", steps=2, seed=7)
    b = enh.inpaint(photo, mask, prompt="a dog", steps=2, seed=7)
    c = enh.inpaint(photo, mask, prompt="a dog", steps=2, seed=8)
    assert np.array_equal(arr(a), arr(b))
    assert np.abs(arr(c) - arr(a)).mean() > 0.5
    assert enh.last_record["seed"] == 8


def test_crops_go_to_the_models_native_resolution_keeping_their_aspect(models, photo) -> None:
    """The tiny models declare 64 px (UNet sample size 8 × VAE factor 8); the 96×80 photo is one
    crop, so it is repainted at 64×56."""
    selected = square(photo.size, (40, 30, 60, 50))
    enh = Enhancer(models["sd15"])
    out = enh.inpaint(photo, as_mask(selected), strength=0.5, steps=2, seed=0)
    assert native_resolution(enh.engine.inpaint()) == 64
    assert enh.last_record["inpaint_crops"] == [{"box": [0, 0, 96, 80], "size": [64, 56]}]
    assert_exact_outside(out, photo, blend_of(selected))


@pytest.mark.parametrize(
    ("sample_size", "side"), [(64, 512), (96, 768), (128, 1024), ((64, 96), 768)]
)
def test_native_resolution_is_read_from_the_unet(sample_size, side) -> None:
    unet = SimpleNamespace(config=SimpleNamespace(sample_size=sample_size))
    assert native_resolution(SimpleNamespace(unet=unet, vae_scale_factor=8)) == side


# --- crop geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selected_box", "crop_box"),
    [
        # top-left corner: 16 px + 2×16 padding = 48, centred, shifted into the image
        ((0, 0, 16, 16), (0, 0, 48, 48)),
        # bottom-right corner of the 256×192 image
        ((240, 176, 256, 192), (208, 144, 256, 192)),
        # top edge, 32×8: 64 wide (32 + 2×16), square, so 64 high from row 0
        ((100, 0, 132, 8), (84, 0, 148, 64)),
        # right edge, 8×40: 72 tall, widened to 72 and pushed left from the border
        ((248, 80, 256, 120), (184, 64, 256, 136)),
    ],
)
def test_crops_at_corners_and_edges(models, scene, selected_box, crop_box):
    selected = square(scene.size, selected_box)
    enh = Enhancer(models["sd15"])
    out = enh.inpaint(scene, as_mask(selected), grow=0, feather=0, padding=16, **FAST)
    assert enh.last_record["inpaint_crops"] == [{"box": list(crop_box), "size": [64, 64]}]
    assert_exact_outside(out, scene, selected.astype(np.float32))  # no grow, no feather
    assert changed(out, scene, selected) > 5.0


def test_two_disjoint_regions_get_their_own_crops(models, scene) -> None:
    selected = square(scene.size, (20, 20, 40, 40)) | square(scene.size, (200, 140, 230, 170))
    enh = Enhancer(models["sd15"])
    out = enh.inpaint(scene, as_mask(selected), grow=2, feather=4, padding=8, **FAST)
    # grown by 2 and feathered by 4 (weights reach 3 px out), the blend boxes are
    # (15, 15, 45, 45) and (195, 135, 235, 175); + 2×8 padding -> 46 -> 48 and 56, centred
    assert enh.last_record["inpaint_crops"] == [
        {"box": [6, 6, 54, 54], "size": [64, 64]},
        {"box": [187, 127, 243, 183], "size": [64, 64]},
    ]
    assert_exact_outside(out, scene, blend_of(selected, 2, 4))
    for box in ((20, 20, 40, 40), (200, 140, 230, 170)):
        assert changed(out, scene, square(scene.size, box)) > 5.0


def test_geometry_helpers() -> None:
    assert processing_size((96, 96), 512) == (512, 512)
    assert processing_size((96, 80), 512) == (512, 424)
    assert processing_size((2048, 1024), 1024) == (1024, 512)
    assert processing_size((600, 7), 512) == (512, 8)
    mask = np.zeros((16, 24), np.float32)
    mask[7, 8] = 1.0  # one pixel at a cell's corner selects that whole 8×8 cell
    cover = latent_cover(mask)
    assert cover.shape == (16, 24) and cover.sum() == 64 and cover[0:8, 8:16].all()


# --- alpha, fills without a model, and user errors ------------------------------------------------


def test_rgba_input_keeps_its_alpha(models, photo) -> None:
    alpha = np.full((photo.size[1], photo.size[0]), 255, np.uint8)
    alpha[:, :20] = 0
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    selected = square(photo.size, (50, 30, 70, 50))
    out = Enhancer(models["sd15"]).inpaint(rgba, as_mask(selected), **FAST)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)
    assert_exact_outside(out, rgba, blend_of(selected))


def test_strength_zero_uses_the_fill_alone_and_loads_no_model(photo) -> None:
    enh = Enhancer("nobody/missing")  # would fail to resolve if a model loaded
    selected = square(photo.size, (40, 30, 60, 50))
    same = enh.inpaint(photo, as_mask(selected), strength=0.0)
    assert np.array_equal(arr(same), arr(photo))
    filled = enh.inpaint(photo, as_mask(selected), strength=0.0, fill="telea")
    assert_exact_outside(filled, photo, blend_of(selected))
    assert changed(filled, photo, selected) > 1.0


def test_noise_fill_is_seeded_and_matches_the_surroundings(photo) -> None:
    enh = Enhancer("nobody/missing")
    selected = square(photo.size, (40, 30, 60, 50))
    opts = {"strength": 0.0, "fill": "noise", "grow": 0, "feather": 0}
    a = enh.inpaint(photo, as_mask(selected), seed=3, **opts)
    b = enh.inpaint(photo, as_mask(selected), seed=3, **opts)
    assert np.array_equal(arr(a), arr(b))
    ring = (grow(selected.astype(np.float32), 16) > 0) & ~selected
    src = arr(photo)[ring].astype(float)
    got = arr(a)[selected].astype(float)
    assert np.allclose(got.mean(axis=0), src.mean(axis=0), atol=6)
    assert np.allclose(got.std(axis=0), src.std(axis=0), rtol=0.25, atol=3)


def test_blur_fill_continues_the_surroundings() -> None:
    flat = np.full((60, 80, 3), (40, 120, 200), np.uint8)
    hole = square((80, 60), (20, 15, 60, 45)).astype(np.float32)
    junk = flat.copy()
    junk[hole > 0] = (255, 0, 0)
    assert np.array_equal(blur_fill(junk, hole), flat)  # one colour around: exactly that colour
    split = flat.copy()
    split[:, 40:] = (200, 40, 40)
    split[hole > 0] = 0
    filled = blur_fill(split, hole).astype(int)
    inside = filled[hole > 0]
    assert np.all(inside >= 40) and np.all(inside <= 200)  # between the two sides
    assert filled[30, 22, 2] > filled[30, 57, 2]  # and nearer each side's colour at that side


def test_mask_errors_name_the_problem(photo) -> None:
    enh = Enhancer("nobody/missing")
    small = as_mask(square((48, 40), (10, 10, 20, 20)))
    with pytest.raises(SdenhanceError) as info:
        enh.inpaint(photo, small)
    assert "48×40" in str(info.value) and "96×80" in str(info.value)
    stretched = enh.inpaint(photo, small, mask_resize=True, strength=0.0, fill="blur")
    assert_exact_outside(stretched, photo, blend_of(square(photo.size, (20, 20, 40, 40))))
    with pytest.raises(SdenhanceError, match="mask selects nothing"):
        enh.inpaint(photo, as_mask(np.zeros((80, 96), bool)))
    with pytest.raises(SdenhanceError, match="`grow`=-6"):
        enh.inpaint(photo, as_mask(square(photo.size, (40, 30, 50, 40))), grow=-6)


@pytest.mark.parametrize(
    ("values", "word"),
    [
        ({"area": "everything"}, "`area`"),
        ({"fill": "smudge"}, "`fill`"),
        ({"grow": 300}, "`grow`"),
        ({"feather": -1}, "`feather`"),
        ({"padding": -4}, "`padding`"),
        ({"strength": 1.5}, "`strength`"),
        ({"scheduler": "fastest"}, "`scheduler`"),
        ({"feathr": 3}, "did you mean `feather`"),
    ],
)
def test_bad_options_fail_before_loading(photo, values, word) -> None:
    with pytest.raises(SdenhanceError, match=word):
        Enhancer("nobody/missing").inpaint(photo, as_mask(np.ones((80, 96), bool)), **values)


def test_full_mask_is_allowed_with_a_warning(models, photo, caplog) -> None:
    logger = logging.getLogger("sdenhance")
    logger.addHandler(caplog.handler)  # the CLI may have turned propagation off
    try:
        out = Enhancer(models["sd15"]).inpaint(photo, as_mask(np.ones((80, 96), bool)), **FAST)
    finally:
        logger.removeHandler(caplog.handler)
    assert "whole image" in caplog.text
    assert out.size == photo.size and changed(out, photo, np.ones((80, 96), bool)) > 5.0


# --- remove with refinement through this stage ------------------------------------------------------


def test_remove_with_refine_runs_end_to_end(models, scene) -> None:
    selected = square(scene.size, (100, 80, 140, 120))
    painted = np.asarray(scene).copy()
    painted[selected] = (230, 20, 20)
    image = Image.fromarray(painted)
    enh = Enhancer(models["sd15"])
    offline = enh.remove(image, as_mask(selected), refine=False)
    refined = enh.remove(image, as_mask(selected), refine=True, steps=2, seed=0)
    region = grow(selected.astype(np.float32), 8) > 0  # remove's default grow
    assert np.array_equal(arr(refined)[~region], painted[~region])
    assert changed(refined, offline, selected) > 1.0
    assert enh.last_record["inpaint_crops"][0]["size"] == [64, 64]


# --- the command line ------------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(app, ["inpaint", *args])


@pytest.fixture
def files(tmp_path, photo):
    photo.save(tmp_path / "photo.png")
    selected = square(photo.size, (40, 30, 60, 50))
    as_mask(selected).save(tmp_path / "mask.png")
    return tmp_path, selected


def test_cli_inpaints_and_keeps_the_rest(models, files, photo) -> None:
    tmp, selected = files
    args = [str(tmp / "photo.png"), "--mask", str(tmp / "mask.png"), "--model", models["sd15"]]
    args += ["--prompt", "a red ball", "--steps", "2", "--seed", "4", "--grow", "-2"]
    args += ["--feather", "3", "--fill", "noise", "--no-color-match", "--scheduler", "euler"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    out_path = tmp / "photo_inpaint.png"
    assert result.stdout.strip() == str(out_path)
    out = Image.open(out_path).convert("RGB")
    assert_exact_outside(out, photo, blend_of(selected, -2, 3))
    expected = Enhancer(models["sd15"]).inpaint(
        photo,
        as_mask(selected),
        prompt="a red ball",
        steps=2,
        seed=4,
        grow=-2,
        feather=3,
        fill="noise",
        color_match=False,
        scheduler="euler",
    )
    assert np.array_equal(arr(out), arr(expected))
    from sdenhance.io.load import read_metadata

    meta = read_metadata(out_path)
    assert meta.prompt == "a red ball" and meta.sdenhance["seed"] == 4


def test_cli_alpha_mask_repaints_the_transparent_pixels(models, tmp_path, photo):
    selected = square(photo.size, (30, 20, 50, 40))
    rgba = photo.convert("RGBA")
    rgba.putalpha(as_mask(~selected))
    rgba.save(tmp_path / "cut.png")
    result = invoke(
        str(tmp_path / "cut.png"),
        "--mask",
        "alpha",
        "--model",
        models["sd15"],
        "--steps",
        "2",
        "--seed",
        "0",
    )
    assert result.exit_code == 0, result.output
    out = Image.open(tmp_path / "cut_inpaint.png")
    assert out.mode == "RGB"  # the transparency was the mask
    assert_exact_outside(out, photo, blend_of(selected))
    photo.save(tmp_path / "flat.png")
    flat = invoke(str(tmp_path / "flat.png"), "--mask", "alpha", "--model", models["sd15"])
    assert flat.exit_code == 2 and "no transparency" in flat.stderr


def test_cli_mask_size_mismatch_exits_2_naming_both_sizes(files) -> None:
    tmp, selected = files
    as_mask(square((48, 40), (5, 5, 20, 20))).save(tmp / "small.png")
    result = invoke(str(tmp / "photo.png"), "--mask", str(tmp / "small.png"), "--model", "nobody/x")
    assert result.exit_code == 2
    assert (
        "48×40" in result.stderr and "96×80" in result.stderr and "--mask-resize" in result.stderr
    )
    assert not (tmp / "photo_inpaint.png").exists()


def test_cli_empty_mask_exits_2(files) -> None:
    tmp, selected = files
    as_mask(np.zeros_like(selected)).save(tmp / "empty.png")
    result = invoke(str(tmp / "photo.png"), "--mask", str(tmp / "empty.png"), "--model", "nobody/x")
    assert result.exit_code == 2 and "mask selects nothing" in result.stderr
    assert not (tmp / "photo_inpaint.png").exists()


def test_cli_full_mask_is_allowed_with_a_warning(models, files) -> None:
    tmp, selected = files
    as_mask(np.ones_like(selected)).save(tmp / "full.png")
    result = invoke(
        str(tmp / "photo.png"),
        "--mask",
        str(tmp / "full.png"),
        "--model",
        models["sd15"],
        "--steps",
        "2",
        "--seed",
        "0",
        "--area",
        "whole",
    )
    assert result.exit_code == 0, result.output
    assert "whole image" in result.stderr
    assert (tmp / "photo_inpaint.png").exists()


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--area", "all"], "area"),
        (["--fill", "smudge"], "fill"),
        (["--feather", "-2"], "feather"),
        (["--strength", "2"], "strength"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_cli_bad_options_exit_2_before_anything_loads(files, args, word) -> None:
    tmp, _ = files
    result = invoke(str(tmp / "photo.png"), "--mask", str(tmp / "missing.png"), *args)
    assert result.exit_code == 2
    assert word in result.stderr  # the option, not the missing mask: options are checked first
