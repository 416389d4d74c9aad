"""Face detailing on tiny models: real detection on scikit-image's photos, exactness outside the
face masks (at image borders too), the strength rule, blend, seeds, recipes, alpha and the CLI.
Tiny models paint noise; the tests check geometry and bits. Faces at chosen places come from a
stand-in detector registered through the detector plug-in."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.api import apply_stage, build_options
from sdenhance.cli import app
from sdenhance.detectors import faces as detectors
from sdenhance.detectors.faces import register_detector
from sdenhance.ops.faces import Face, face_crop, face_mask
from sdenhance.stages import Context
from sdenhance.stages.facefix import face_strength

FAST = {"steps": 2, "seed": 1}
SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
ASTRONAUT_FACE = (180, 70, 265, 165)  # eyebrows to chin, as in test_faces


class StandIn:
    """A detector that returns the faces it was given (min_score 0: every one counts)."""

    min_score = 0.0

    def __init__(self, found: list[Face]) -> None:
        self.found = found

    def __call__(self, rgb_u8: np.ndarray) -> list[Face]:
        return list(self.found)


@pytest.fixture
def stand_in(monkeypatch) -> list[Face]:
    """Register detector `stand-in`; it finds the faces the test puts in the returned list."""
    found: list[Face] = []
    monkeypatch.setattr(detectors, "DETECTORS", dict(detectors.DETECTORS))
    register_detector("stand-in", lambda: StandIn(found))
    return found


@pytest.fixture(scope="module")
def enh(models) -> Enhancer:
    """One enhancer for the module: the tiny sd15 model loads once."""
    return Enhancer(models["sd15"])


@pytest.fixture
def scene() -> Image.Image:
    """A 160×128 crop of a real photo (a cat: the stand-in says where the faces are)."""
    return Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB").crop((60, 40, 220, 168))


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def union_of_masks(boxes: list[list[int]], size: tuple[int, int], **mask_opts: float) -> np.ndarray:
    """The union of the stage's face masks for these boxes (defaults: dilate 0.15, feather 0.1)."""
    masks = [face_mask(Face(*box, 1.0), size, **mask_opts) for box in boxes]
    return np.maximum.reduce(masks)


def assert_exact_outside(out: Image.Image, src: Image.Image, mask: np.ndarray) -> None:
    keep = mask == 0
    assert out.size == src.size and keep.any()
    assert np.array_equal(arr(out)[..., :3][keep], arr(src)[..., :3][keep])


def changed(out: Image.Image, src: Image.Image, where: np.ndarray) -> float:
    return float(np.abs(arr(out)[..., :3] - arr(src)[..., :3])[where].mean())


def iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# --- real detection ------------------------------------------------------------------------------


def test_repaints_the_astronauts_face_and_nothing_else(models, enh) -> None:
    image = Image.open(SKIMAGE_DATA / "astronaut.png")
    out = enh.facefix(image, **FAST)
    found = enh.last_record["faces"]
    assert len(found) == 1 and iou(found[0]["box"], ASTRONAUT_FACE) > 0.6
    mask = union_of_masks([f["box"] for f in found], image.size)
    assert_exact_outside(out, image, mask)
    assert changed(out, image, mask == 1) > 2.0
    # the tiny model is 64 px native and the face ~100 px: strength 0.3 × 64 / side
    side = max(found[0]["box"][2] - found[0]["box"][0], found[0]["box"][3] - found[0]["box"][1])
    assert found[0]["strength"] == pytest.approx(0.3 * 64 / side, abs=1e-4)
    assert found[0]["size"] == [64, 64]
    assert enh.last_record["prompt"].startswith("a detailed photo of a face")
    assert enh.last_record["models"]["model"] == models["sd15"]


def test_no_face_in_a_coffee_cup_returns_the_input_and_loads_no_model(caplog) -> None:
    image = Image.open(SKIMAGE_DATA / "coffee.png")
    logger = logging.getLogger("sdenhance")
    logger.addHandler(caplog.handler)  # the CLI may have turned propagation off
    caplog.set_level(logging.INFO, logger="sdenhance")
    try:
        enh = Enhancer("nobody/missing")  # would fail to resolve if a model loaded
        out = enh.facefix(image)
    finally:
        logger.removeHandler(caplog.handler)
    assert np.array_equal(arr(out), arr(image))
    assert enh.last_record["faces"] == [] and "no faces" in caplog.text


# --- the strength rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "native", "expected"),
    [
        (100, 512, 0.3),  # smaller than native: full strength
        (512, 512, 0.3),
        (640, 512, 0.24),  # 0.3 × 512 / 640
        (768, 1024, 0.3),  # SDXL's native side is larger
        (853, 512, 0.3 * 512 / 853),
        (2000, 512, 0.18),  # floor: 0.6 of the setting
    ],
)
def test_bigger_faces_get_less_strength(side, native, expected) -> None:
    face = Face(10, 10, 10 + side, 10 + side // 2, 5.0)  # the longer side counts
    assert face_strength(0.3, face, native) == pytest.approx(expected)


# --- geometry at the borders, blend and paste-back -----------------------------------------------


@pytest.mark.parametrize(
    "box",
    [
        (0, 0, 40, 44),  # top-left corner
        (120, 84, 160, 128),  # bottom-right corner
        (128, 40, 160, 80),  # right edge
        (50, 0, 90, 36),  # top edge
    ],
)
def test_faces_at_borders_are_cropped_pasted_and_blended_exactly(enh, scene, stand_in, box):
    stand_in.append(Face(*box, 1.0))
    opts = {"detector": "stand-in", "color_match": False, **FAST}
    full = enh.facefix(scene, blend=1.0, **opts)
    [record] = enh.last_record["faces"]
    assert record["crop"] == list(face_crop(Face(*box, 1.0), scene.size, padding=0.5))
    mask = face_mask(Face(*box, 1.0), scene.size)
    x0, y0, x1, y1 = record["crop"]
    assert mask.sum() == pytest.approx(mask[y0:y1, x0:x1].sum())  # the soft mask fits its crop
    assert_exact_outside(full, scene, mask)
    inner = mask == 1
    assert changed(full, scene, inner) > 2.0
    edge = np.zeros_like(inner)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    assert (inner & edge).any()  # the face reaches the border, and is repainted there too
    assert changed(full, scene, inner & edge) > 2.0
    # same seed, half the opacity: where the mask is 1, exactly the rounded mean of both
    half = enh.facefix(scene, blend=0.5, **opts)
    assert_exact_outside(half, scene, mask)
    mean = np.rint((arr(scene).astype(np.float64) + arr(full)) / 2)
    assert np.array_equal(arr(half)[inner], mean[inner])


@pytest.mark.parametrize("values", [{"blend": 0.0}, {"strength": 0.0}])
def test_blend_or_strength_zero_returns_the_input_and_loads_no_model(scene, stand_in, values):
    stand_in.append(Face(40, 30, 90, 80, 1.0))
    enh = Enhancer("nobody/missing")
    out = enh.facefix(scene, detector="stand-in", **values)
    assert np.array_equal(arr(out), arr(scene))
    assert enh.last_record["faces"] == [{"index": 1, "box": [40, 30, 90, 80], "score": 1.0}]


def test_same_seed_same_output_and_max_faces(enh, scene, stand_in) -> None:
    stand_in.extend([Face(8, 8, 48, 48, 3.0), Face(100, 60, 150, 110, 2.0)])
    a = enh.facefix(scene, detector="stand-in", steps=2, seed=7)
    b = enh.facefix(scene, detector="stand-in", steps=2, seed=7)
    c = enh.facefix(scene, detector="stand-in", steps=2, seed=8)
    assert np.array_equal(arr(a), arr(b))
    assert np.abs(arr(c) - arr(a)).mean() > 0.1 and enh.last_record["seed"] == 8
    boxes = [f["box"] for f in enh.last_record["faces"]]
    assert boxes == [[8, 8, 48, 48], [100, 60, 150, 110]]
    mask = union_of_masks(boxes, scene.size)
    assert_exact_outside(a, scene, mask)
    for box in boxes:
        assert changed(a, scene, union_of_masks([box], scene.size) == 1) > 2.0
    one = enh.facefix(scene, detector="stand-in", max_faces=1, **FAST)
    assert [f["box"] for f in enh.last_record["faces"]] == [[8, 8, 48, 48]]  # the surer one
    assert_exact_outside(one, scene, union_of_masks([[8, 8, 48, 48]], scene.size))


def test_rgba_input_keeps_its_alpha(enh, scene, stand_in) -> None:
    stand_in.append(Face(60, 40, 100, 80, 1.0))
    alpha = np.full((scene.size[1], scene.size[0]), 255, np.uint8)
    alpha[:, :30] = 0
    rgba = scene.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    out = enh.facefix(rgba, detector="stand-in", **FAST)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)
    mask = union_of_masks([[60, 40, 100, 80]], scene.size)
    assert_exact_outside(out, rgba, mask)
    assert changed(out, rgba, mask == 1) > 2.0


def test_runs_as_a_recipe_step_after_another_stage(enh, scene, stand_in, tmp_path) -> None:
    stand_in.append(Face(50, 30, 100, 80, 1.0))
    steps = [
        ("denoise", {"strength": 0.3}),
        ("facefix", {"detector": "stand-in", "steps": 2}),
    ]
    try:
        from sdenhance.recipes import load_recipe, run_recipe
    except ImportError:  # a build without recipes: the same steps by hand, one context
        ctx = enh.context(seed=3)
        out = scene
        for stage, values in steps:
            out = apply_stage(stage, out, build_options(stage, values), ctx)
        record = ctx.record
    else:
        path = tmp_path / "faces.toml"
        path.write_text(
            'name = "faces"\n'
            '[[steps]]\nstage = "denoise"\noptions = { strength = 0.3 }\n'
            '[[steps]]\nstage = "facefix"\noptions = { detector = "stand-in", steps = 2 }\n'
        )
        out = run_recipe(load_recipe(path), scene, enhancer=enh, seed=3)
        record = enh.last_record
        assert record["recipe"] == "faces"
    assert [s["stage"] for s in record["steps"]] == ["denoise", "facefix"]
    denoised = enh.denoise(scene, strength=0.3)
    mask = union_of_masks([[50, 30, 100, 80]], scene.size)
    assert_exact_outside(out, denoised, mask)  # facefix kept every other denoised pixel
    alone = enh.facefix(denoised, detector="stand-in", steps=2, seed=3)
    assert np.array_equal(arr(out), arr(alone))


# --- user errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "word"),
    [
        ({"strength": 1.5}, "`strength`"),
        ({"blend": -0.1}, "`blend`"),
        ({"max_faces": 0}, "`max_faces`"),
        ({"padding": 0.2}, r"`padding` \(0.2\) must be ≥ `dilate` \+ `feather`"),
        ({"detector": "haar"}, "unknown face detector `haar`"),
        ({"detector": "missing.onnx"}, "not found"),
        ({"scheduler": "fastest"}, "`scheduler`"),
        ({"stength": 0.2}, "did you mean `strength`"),
    ],
)
def test_bad_options_fail_before_loading(scene, values, word) -> None:
    with pytest.raises(SdenhanceError, match=word):
        Enhancer("nobody/missing").facefix(scene, **values)


# --- the command line ----------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(app, ["facefix", *args])


def test_cli_repaints_faces_like_the_api(models, enh, scene, stand_in, tmp_path) -> None:
    stand_in.append(Face(50, 30, 100, 80, 1.0))
    scene.save(tmp_path / "cat.png")
    args = [str(tmp_path / "cat.png"), "--detector", "stand-in", "--model", models["sd15"]]
    args += ["--strength", "0.4", "--blend", "0.7", "--steps", "2", "--seed", "5"]
    args += ["--prompt", "a cat's face", "--max-faces", "2", "--min-face", "16"]
    args += ["--scheduler", "euler", "--no-color-match"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    out_path = tmp_path / "cat_facefix.png"
    assert result.stdout.strip() == str(out_path)
    expected = enh.facefix(
        scene,
        detector="stand-in",
        strength=0.4,
        blend=0.7,
        steps=2,
        seed=5,
        prompt="a cat's face",
        max_faces=2,
        min_face=16,
        scheduler="euler",
        color_match=False,
    )
    assert np.array_equal(arr(Image.open(out_path).convert("RGB")), arr(expected))
    from sdenhance.io.load import read_metadata

    meta = read_metadata(out_path)
    assert meta.prompt == "a cat's face" and meta.sdenhance["faces"][0]["box"] == [50, 30, 100, 80]
    again = invoke(*args)  # an existing output is skipped without --overwrite
    assert again.exit_code == 0 and "exists" in again.stderr


def test_cli_image_without_faces_is_written_unchanged(tmp_path) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    image.save(tmp_path / "noise.png")
    result = invoke(
        str(tmp_path / "noise.png"), "--model", "nobody/missing", "-o", str(tmp_path / "o.png")
    )
    assert result.exit_code == 0, result.output
    assert "no faces" in result.stderr
    assert np.array_equal(arr(Image.open(tmp_path / "o.png")), arr(image))


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--strength", "2"], "strength"),
        (["--blend", "1.5"], "blend"),
        (["--min-face", "0"], "min_face"),
        (["--padding", "0.1"], "padding"),
        (["--detector", "haar"], "haar"),
        (["--detector", "faces.onnx"], "not found"),
        (["--seed", "-1"], "--seed"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_cli_bad_options_exit_2_writing_nothing(tmp_path, scene, args, word) -> None:
    scene.save(tmp_path / "cat.png")
    result = invoke(str(tmp_path / "cat.png"), "--model", "nobody/missing", *args)
    assert result.exit_code == 2 and word in result.stderr
    assert not (tmp_path / "cat_facefix.png").exists()


def test_cli_missing_input_exits_2(tmp_path) -> None:
    result = invoke(str(tmp_path / "nope.png"))
    assert result.exit_code == 2 and "nope.png" in result.stderr


def test_context_records_faces_for_a_custom_stage_call(scene, stand_in) -> None:
    """`run` keeps to the stage protocol: RGB in, RGB out, faces in the context's record."""
    from sdenhance.stages import facefix

    stand_in.append(Face(40, 30, 90, 80, 0.5))
    ctx = Context()
    out = facefix.run(scene, build_options("facefix", {"detector": "stand-in", "blend": 0}), ctx)
    assert out.mode == "RGB" and ctx.record["faces"][0]["score"] == 0.5
