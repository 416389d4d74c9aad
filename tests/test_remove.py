"""Object removal on real photos: fill quality against the true background, exactness outside."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pytest
from PIL import Image
from skimage import color, data

from sdenhance.api import Enhancer, build_options
from sdenhance.errors import SdenhanceError
from sdenhance.ops.masks import grow
from sdenhance.stages import STAGES, Context
from sdenhance.stages import remove as remove_stage

RED = (230, 20, 20)


def disc(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def scene(name: str, cy: int, cx: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true photo, photo with a red disc painted on, disc mask)."""
    truth = np.ascontiguousarray(getattr(data, name)()[..., :3])
    obj = disc(truth.shape[:2], cy, cx, r)
    painted = truth.copy()
    painted[obj] = RED
    return truth, painted, obj


def as_mask(selected: np.ndarray) -> Image.Image:
    return Image.fromarray(selected.astype(np.uint8) * 255, "L")


def errors(out: np.ndarray, truth: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """Mean absolute error (0..255) and mean CIEDE2000 over the pixels `where`."""
    a, b = out[where].astype(np.float64), truth[where].astype(np.float64)
    de = color.deltaE_ciede2000(color.rgb2lab(a[None] / 255), color.rgb2lab(b[None] / 255))
    return float(np.abs(a - b).mean()), float(de.mean())


def flat_fill(painted: np.ndarray, region: np.ndarray, ring_px: int = 8) -> np.ndarray:
    """The naive baseline: the region filled with the mean colour of the ring around it."""
    ring = (grow(region.astype(np.float32), ring_px) > 0) & ~region
    out = painted.copy()
    out[region] = np.rint(painted[ring].mean(axis=0)).astype(np.uint8)
    return out


# --- the stage through the Python API -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cy", "cx", "r", "ratio"),
    [
        ("coffee", 200, 300, 30, 0.5),  # across the cup's rim and saucer
        ("coffee", 120, 420, 28, 0.6),  # on the table's gradient
        ("astronaut", 256, 256, 30, 0.9),  # suit folds and badge
    ],
)
@pytest.mark.parametrize("method", ["telea", "ns"])
def test_removal_beats_a_flat_fill_and_keeps_the_rest(name, cy, cx, r, ratio, method) -> None:
    truth, painted, obj = scene(name, cy, cx, r)
    out = Enhancer().remove(Image.fromarray(painted), as_mask(obj), refine=False, method=method)
    out = np.asarray(out)
    region = grow(obj.astype(np.float32), 8) > 0  # default grow 8

    assert out.shape == painted.shape
    assert np.array_equal(out[~region], painted[~region])  # bit-identical outside
    assert not np.any(np.all(out[obj] == RED, axis=-1))  # no red left
    ours_mae, ours_de = errors(out, truth, region)
    flat_mae, flat_de = errors(flat_fill(painted, region), truth, region)
    assert ours_mae < ratio * flat_mae
    assert ours_de < ratio * flat_de


def test_default_fill_is_patchmatch_seeded_and_recorded() -> None:
    from sdenhance.ops.fill import fill_region

    truth, painted, obj = scene("coffee", 120, 420, 28)
    enh = Enhancer()
    a = np.asarray(enh.remove(Image.fromarray(painted), as_mask(obj), refine=False, seed=3))
    assert enh.last_record["seed"] == 3
    b = np.asarray(enh.remove(Image.fromarray(painted), as_mask(obj), refine=False, seed=3))
    region = grow(obj.astype(np.float32), 8) > 0
    assert np.array_equal(a, b) and np.array_equal(a[~region], painted[~region])
    direct = fill_region(painted, region, method="patchmatch", radius=3, seed=3)
    assert np.array_equal(a, direct)  # the default: patchmatch, patch radius 3


def test_grow_zero_fills_exactly_the_mask() -> None:
    truth, painted, obj = scene("coffee", 200, 300, 30)
    out = np.asarray(
        Enhancer().remove(Image.fromarray(painted), as_mask(obj), refine=False, grow=0)
    )
    assert np.array_equal(out[~obj], painted[~obj])
    assert not np.array_equal(out[obj], painted[obj])


def test_alpha_is_kept_around_the_stage() -> None:
    truth, painted, obj = scene("coffee", 200, 300, 30)
    alpha = np.full(obj.shape, 255, np.uint8)
    alpha[:40] = 0
    rgba = Image.fromarray(np.dstack([painted, alpha]), "RGBA")
    out = Enhancer().remove(rgba, as_mask(obj), refine=False)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_mask_of_another_size_is_refused_or_stretched() -> None:
    truth, painted, obj = scene("coffee", 200, 300, 30)
    half = as_mask(obj).resize((300, 200), Image.Resampling.NEAREST)
    with pytest.raises(SdenhanceError) as info:
        Enhancer().remove(Image.fromarray(painted), half, refine=False)
    assert "300×200" in str(info.value) and "600×400" in str(info.value)
    out = np.asarray(
        Enhancer().remove(Image.fromarray(painted), half, refine=False, mask_resize=True)
    )
    assert not np.any(np.all(out[obj] == RED, axis=-1))


def test_empty_and_all_covering_masks_are_errors() -> None:
    truth, painted, obj = scene("coffee", 200, 300, 30)
    image = Image.fromarray(painted)
    with pytest.raises(SdenhanceError, match="selects nothing"):
        Enhancer().remove(image, as_mask(np.zeros_like(obj)), refine=False)
    with pytest.raises(SdenhanceError, match="whole image"):
        Enhancer().remove(image, as_mask(np.ones_like(obj)), refine=False)
    band = np.zeros_like(obj)
    band[:, 10:] = True
    with pytest.raises(SdenhanceError, match="smaller --grow"):
        Enhancer().remove(image, as_mask(band), refine=False, grow=10)


@pytest.mark.parametrize(
    ("values", "word"),
    [
        ({"method": "blur"}, "method"),
        ({"radius": 0}, "radius"),
        ({"grow": -1}, "grow"),
        ({"refine_strength": 0.0}, "refine_strength"),
        ({"refine_strength": 1.5}, "refine_strength"),
        ({"steps": 0}, "steps"),
        ({"guidance": -1.0}, "guidance"),
        ({"radious": 3}, "radius"),
        ({"method": "patchmatch", "radius": 17}, "radius` 17 is too large for patchmatch"),
        ({"radius": 65, "method": "telea"}, "radius"),
    ],
)
def test_bad_options_are_named(values, word) -> None:
    with pytest.raises(SdenhanceError, match=word):
        build_options("remove", {"refine": False, **values})


# --- refinement through the inpaint stage ---------------------------------------------------------


def test_refine_without_an_inpaint_stage_says_how_to_go_on(monkeypatch) -> None:
    monkeypatch.setitem(STAGES, "inpaint", "sdenhance.stages._no_such_stage")
    with pytest.raises(SdenhanceError, match="--no-refine"):
        build_options("remove", {"refine": True})


@dataclasses.dataclass(frozen=True)
class FakeInpaintOptions:
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 0.75
    steps: int = 30
    guidance: float = 7.0
    grow: int = 4
    feather: int = 8
    area: str = "whole"
    padding: int = 32
    fill: str = "noise"


@pytest.fixture
def fake_inpaint(monkeypatch):
    """An inpaint stage that brightens the whole image (inside and outside its mask)."""
    calls: list[dict] = []

    def run(image, opts, ctx):
        calls.append({"image": np.asarray(image).copy(), "opts": opts, "mask": ctx.images["mask"]})
        return Image.fromarray(np.clip(np.asarray(image).astype(int) + 40, 0, 255).astype(np.uint8))

    module = types.ModuleType("fake_inpaint_stage")
    module.Options = FakeInpaintOptions
    module.run = run
    monkeypatch.setitem(sys.modules, "fake_inpaint_stage", module)
    monkeypatch.setitem(STAGES, "inpaint", "fake_inpaint_stage")
    return calls


def test_refine_repaints_the_fill_and_never_touches_the_outside(fake_inpaint) -> None:
    truth, painted, obj = scene("coffee", 200, 300, 30)
    user_mask = as_mask(obj)
    opts = build_options("remove", {"refine_strength": 0.3, "prompt": "wooden table"})
    ctx = Context(seed=1, images={"mask": user_mask})
    out = np.asarray(remove_stage.run(Image.fromarray(painted), opts, ctx))

    region = grow(obj.astype(np.float32), 8) > 0
    (call,) = fake_inpaint
    assert call["opts"].strength == 0.3 and call["opts"].prompt == "wooden table"
    assert (
        call["opts"].fill == "original" and call["opts"].grow == 0 and call["opts"].area == "masked"
    )
    assert np.array_equal(np.asarray(call["mask"]) > 0, region)  # the grown mask went in
    assert ctx.images["mask"] is user_mask  # and the caller's mask is back
    filled = call["image"]
    assert np.array_equal(filled[~region], painted[~region])

    assert np.array_equal(out[~region], painted[~region])  # the +40 outside is discarded
    deep = grow(region.astype(np.float32), -8) > 0  # 8 px inside the region's edge
    refined = np.clip(filled.astype(int) + 40, 0, 255)
    assert np.array_equal(out[deep], refined[deep])
    edge = region & ~deep  # a ramp between the two
    lo, hi = np.minimum(filled, refined), np.maximum(filled, refined)
    assert np.all((out[edge] >= lo[edge]) & (out[edge] <= hi[edge]))


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    """A coffee photo with a red disc painted on, its mask, and the truth."""
    truth, painted, obj = scene("coffee", 200, 300, 30)
    Image.fromarray(painted).save(tmp_path / "photo.png")
    as_mask(obj).save(tmp_path / "mask.png")
    return tmp_path, truth, painted, obj


def invoke(*args: str):
    from typer.testing import CliRunner

    from sdenhance.cli import app

    return CliRunner().invoke(app, ["remove", *args])


def test_cli_removes_offline_and_keeps_the_rest_bit_identical(files) -> None:
    tmp, truth, painted, obj = files
    result = invoke(
        str(tmp / "photo.png"), "--mask", str(tmp / "mask.png"), "--no-refine", "--seed", "3"
    )
    assert result.exit_code == 0, result.stderr
    out_path = tmp / "photo_remove.png"
    assert result.stdout.strip() == str(out_path)
    out = np.asarray(Image.open(out_path).convert("RGB"))
    region = grow(obj.astype(np.float32), 8) > 0
    assert np.array_equal(out[~region], painted[~region])
    assert (
        errors(out, truth, region)[0] < 0.5 * errors(flat_fill(painted, region), truth, region)[0]
    )

    args = [str(tmp / "photo.png"), "--mask", str(tmp / "mask.png"), "--no-refine"]
    again = invoke(*args, "--seed", "3")
    assert again.exit_code == 0 and "exists" in again.stderr
    other = invoke(*args)  # another seed: the existing output is not what this would make
    assert other.exit_code == 2 and "made with other settings" in other.stderr


def test_cli_options_reach_the_stage(files) -> None:
    tmp, truth, painted, obj = files
    args = [
        "--mask",
        str(tmp / "mask.png"),
        "--no-refine",
        "--method",
        "ns",
        "--grow",
        "2",
        "--radius",
        "3",
    ]
    result = invoke(str(tmp / "photo.png"), *args, "-o", str(tmp / "out.png"))
    assert result.exit_code == 0, result.stderr
    out = np.asarray(Image.open(tmp / "out.png").convert("RGB"))
    expected = np.asarray(
        Enhancer().remove(
            Image.fromarray(painted), as_mask(obj), refine=False, method="ns", grow=2, radius=3
        )
    )
    assert np.array_equal(out, expected)


def test_cli_patchmatch_options_reach_the_stage(files) -> None:
    tmp, truth, painted, obj = files
    args = ["--mask", str(tmp / "mask.png"), "--no-refine", "--method", "patchmatch"]
    args += ["--radius", "2", "--seed", "4", "-o", str(tmp / "out.png")]
    result = invoke(str(tmp / "photo.png"), *args)
    assert result.exit_code == 0, result.stderr
    out = np.asarray(Image.open(tmp / "out.png").convert("RGB"))
    expected = Enhancer().remove(
        Image.fromarray(painted), as_mask(obj), refine=False, method="patchmatch", radius=2, seed=4
    )
    assert np.array_equal(out, np.asarray(expected))
    other = Enhancer().remove(
        Image.fromarray(painted), as_mask(obj), refine=False, method="patchmatch", radius=3, seed=4
    )
    assert not np.array_equal(out, np.asarray(other))


def test_cli_mask_size_mismatch_exits_2_naming_both_sizes(files) -> None:
    tmp, truth, painted, obj = files
    as_mask(obj).resize((300, 200), Image.Resampling.NEAREST).save(tmp / "small.png")
    result = invoke(str(tmp / "photo.png"), "--mask", str(tmp / "small.png"), "--no-refine")
    assert result.exit_code == 2
    assert (
        "300×200" in result.stderr
        and "600×400" in result.stderr
        and "--mask-resize" in result.stderr
    )
    assert not (tmp / "photo_remove.png").exists()

    fixed = invoke(
        str(tmp / "photo.png"), "--mask", str(tmp / "small.png"), "--no-refine", "--mask-resize"
    )
    assert fixed.exit_code == 0, fixed.stderr
    assert (tmp / "photo_remove.png").exists()


def test_cli_empty_mask_exits_2(files) -> None:
    tmp, truth, painted, obj = files
    as_mask(np.zeros_like(obj)).save(tmp / "empty.png")
    result = invoke(str(tmp / "photo.png"), "--mask", str(tmp / "empty.png"), "--no-refine")
    assert result.exit_code == 2
    assert "mask selects nothing" in result.stderr
    assert not (tmp / "photo_remove.png").exists()


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--method", "blur"], "method"),
        (["--grow", "-3"], "grow"),
        (["--strength", "2"], "refine_strength"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_cli_bad_options_exit_2_before_loading(files, args, word) -> None:
    tmp, *_ = files
    result = invoke(
        str(tmp / "photo.png"), "--mask", str(tmp / "missing.png"), "--no-refine", *args
    )
    assert result.exit_code == 2
    assert word in result.stderr  # the option, not the missing mask: options are checked first


def test_cli_missing_mask_file_exits_2(files) -> None:
    tmp, *_ = files
    result = invoke(str(tmp / "photo.png"), "--mask", str(tmp / "missing.png"), "--no-refine")
    assert result.exit_code == 2 and "missing.png" in result.stderr


def test_cli_alpha_mask_source(files) -> None:
    tmp, truth, painted, obj = files
    alpha = np.where(obj, 0, 255).astype(np.uint8)
    hidden = painted.copy()
    hidden[obj] = 0  # what editors often store under transparency
    Image.fromarray(np.dstack([hidden, alpha]), "RGBA").save(tmp / "cut.png")
    result = invoke(str(tmp / "cut.png"), "--mask", "alpha", "--no-refine")
    assert result.exit_code == 0, result.stderr
    out_img = Image.open(tmp / "cut_remove.png")
    assert out_img.mode == "RGB"  # the transparency was the mask: the object is filled in
    out = np.asarray(out_img)
    region = grow(obj.astype(np.float32), 8) > 0
    assert np.array_equal(out[~region], painted[~region])
    assert (
        errors(out, truth, region)[0] < 0.5 * errors(flat_fill(painted, region), truth, region)[0]
    )

    opaque = invoke(str(tmp / "photo.png"), "--mask", "alpha", "--no-refine")
    assert opaque.exit_code == 2 and "no transparency" in opaque.stderr
