"""Faces one by one: numbering orders, `faces` picks, per-face `[SEP]` prompts and `show`, on
scikit-image's astronaut photo and a two-face composite built from it, with tiny models. A spy
on the inpaint stage's `repaint` records which prompt each face crop was repainted with."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.detectors import faces as detectors
from sdenhance.detectors.faces import register_detector
from sdenhance.ops.face_pick import (
    draw_detections,
    order_faces,
    parse_picks,
    prompt_for,
    split_prompts,
)
from sdenhance.ops.faces import Face
from sdenhance.stages import inpaint

FAST = {"steps": 2, "seed": 1, "color_match": False}  # tiny models: noise, but real runs
AMBER, GREY = (255, 214, 0), (150, 150, 150)


@pytest.fixture(scope="module")
def enh(models) -> Enhancer:
    return Enhancer(models["sd15"])


@pytest.fixture(scope="module")
def two_faces() -> np.ndarray:
    """Two copies of the astronaut's head on her backdrop: a small one on the left, a bigger
    mirrored one on the right (LBP finds both, the right one with the higher score)."""
    photo = data.astronaut()
    head = photo[20:260, 110:350]
    canvas = cv2.resize(photo[0:100, 440:512], (460, 260), interpolation=cv2.INTER_CUBIC)
    canvas[40:208, 10:178] = cv2.resize(head, (168, 168), interpolation=cv2.INTER_AREA)
    canvas[10:250, 210:450] = head[:, ::-1]
    return np.ascontiguousarray(canvas)


@pytest.fixture
def spy(monkeypatch) -> list[dict]:
    """Every face repaint: the prompt, negative prompt and the crop it was given."""
    calls: list[dict] = []
    real = inpaint.repaint

    def recording(pipe, image, region, job, opts, *args, **kwargs):
        calls.append(
            {"prompt": opts.prompt, "negative": opts.negative_prompt, "image": image.copy()}
        )
        return real(pipe, image, region, job, opts, *args, **kwargs)

    monkeypatch.setattr(inpaint, "repaint", recording)
    return calls


@pytest.fixture
def stand_in(monkeypatch) -> list[Face]:
    """Detector `stand-in` finds the faces the test puts in the returned list."""
    found: list[Face] = []

    class StandIn:
        min_score = 0.0

        def __call__(self, rgb_u8):
            return list(found)

    monkeypatch.setattr(detectors, "DETECTORS", dict(detectors.DETECTORS))
    register_detector("stand-in", StandIn)
    return found


def box_of(record: dict) -> tuple[int, int, int, int]:
    return tuple(record["box"])


def crop(image: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(np.asarray(a)[..., :3] != np.asarray(b)[..., :3], axis=-1)


def near_boxes(shape, boxes, *, pad: int = 4, tag_h: int = 40, tag_w: int = 160) -> np.ndarray:
    """Where drawing a box and its label may change pixels: the box's outline band, and a
    tag-sized strip above its top-left corner (or inside it, at the top border)."""
    allowed = np.zeros(shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        allowed[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad] = True
        allowed[max(0, y0 - tag_h) : y0 + tag_h, max(0, x0 - pad) : x0 + tag_w] = True
    return allowed


# --- pure parts -----------------------------------------------------------------------------------


def test_orders() -> None:
    a = Face(300, 10, 340, 50, 9.0)  # right, small, surest
    b = Face(10, 20, 110, 120, 5.0)  # left, largest
    c = Face(150, 30, 210, 90, 7.0)  # middle
    assert order_faces([a, b, c], "confidence") == [a, c, b]
    assert order_faces([a, b, c], "left-right") == [b, c, a]
    assert order_faces([a, b, c], "largest") == [b, c, a]
    d = Face(150, 200, 190, 240, 9.0)  # same score and size as a, left of it
    assert order_faces([a, d], "confidence") == [d, a]
    with pytest.raises(SdenhanceError, match="face order"):
        order_faces([a], "random")


@pytest.mark.parametrize(
    ("text", "picks"), [("1,3", (1, 3)), (" 3, 1 ,3", (1, 3)), ("", ()), ("  ", ()), ("64", (64,))]
)
def test_picks(text, picks) -> None:
    assert parse_picks(text) == picks


@pytest.mark.parametrize("text", ["0", "a", "1,,2", "-1", "1.5", "65", "²", "1;2", "1,"])
def test_bad_picks(text) -> None:
    with pytest.raises(SdenhanceError, match="`faces` takes face numbers"):
        parse_picks(text)


def test_prompt_parts() -> None:
    parts = split_prompts("an old man [SEP]  a young woman ")
    assert parts == ["an old man", "a young woman"]
    assert [prompt_for(parts, k, "dflt") for k in range(3)] == [
        "an old man",
        "a young woman",
        "a young woman",  # the last part serves the rest
    ]
    assert prompt_for(split_prompts("[SEP] b"), 0, "dflt") == "dflt"
    assert prompt_for(split_prompts("one prompt"), 5, "dflt") == "one prompt"


def test_drawing_changes_only_the_boxes_and_their_labels() -> None:
    photo = data.astronaut()
    found = [Face(180, 70, 265, 165, 12.5), Face(0, 0, 60, 50, 4.25)]  # one at the top corner
    out = draw_detections(photo, found, picked={1})
    assert out.shape == photo.shape and not np.shares_memory(out, photo)
    diff = changed(out, photo)
    assert diff.any() and not diff[~near_boxes(photo.shape, [f.box for f in found])].any()
    assert tuple(out[164, 222]) == AMBER and tuple(out[110, 180]) == AMBER  # picked: amber
    assert tuple(out[49, 30]) == GREY and tuple(out[25, 59]) == GREY  # not picked: grey
    assert not diff[100:150, 195:250].any()  # the face itself is not painted over
    tag = out[30:70, 176:340]  # above face 1: an amber tag with dark text on it
    assert (tag == AMBER).all(axis=-1).sum() > 400 and (tag < 60).all(axis=-1).sum() > 40


# --- show ---------------------------------------------------------------------------------------


def test_cli_show_on_the_astronaut_draws_and_loads_no_model(tmp_path) -> None:
    photo = data.astronaut()
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    args = ["facefix", str(tmp_path / "astronaut.png"), "--show", "--model", "nobody/missing"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out_path = tmp_path / "astronaut_faces.png"
    assert result.stdout.strip() == str(out_path)
    out = np.asarray(Image.open(out_path).convert("RGB"))
    from sdenhance.io.load import read_metadata

    [face] = read_metadata(out_path).sdenhance["faces"]
    assert face["index"] == 1 and face["score"] > 4
    x0, y0, x1, y1 = face["box"]
    diff = changed(out, photo)
    assert not diff[~near_boxes(photo.shape, [face["box"]])].any()
    assert tuple(out[y1 - 1, (x0 + x1) // 2]) == AMBER and tuple(out[(y0 + y1) // 2, x0]) == AMBER
    assert not (tmp_path / "astronaut_facefix.png").exists()


def test_show_numbers_follow_the_order_and_grey_the_unpicked(two_faces) -> None:
    enh = Enhancer("nobody/missing")
    shown = np.asarray(enh.facefix(Image.fromarray(two_faces), show=True, order="left-right"))
    left, right = enh.last_record["faces"]
    assert left["index"] == 1 and left["box"][0] < right["box"][0]
    enh.facefix(Image.fromarray(two_faces), show=True, order="largest", faces="2")
    big, small = enh.last_record["faces"]
    assert big["box"] == right["box"] and small["box"] == left["box"]
    picked = np.asarray(
        enh.facefix(Image.fromarray(two_faces), show=True, order="left-right", faces="2")
    )
    x0, y0, x1, y1 = left["box"]
    assert tuple(shown[y1 - 1, (x0 + x1) // 2]) == AMBER  # all picked by default
    assert tuple(picked[y1 - 1, (x0 + x1) // 2]) == GREY  # face 1 not picked
    x0, y0, x1, y1 = right["box"]
    assert tuple(picked[y1 - 1, (x0 + x1) // 2]) == AMBER


# --- per-face prompts and picks on the two-face composite ----------------------------------------


@pytest.mark.parametrize(("order", "first"), [("left-right", "left"), ("largest", "right")])
def test_each_face_is_repainted_with_its_own_prompt(enh, two_faces, spy, order, first) -> None:
    out = np.asarray(
        enh.facefix(
            Image.fromarray(two_faces),
            prompt="PROMPT-A [SEP] PROMPT-B",
            negative_prompt="NEG-A [SEP] NEG-B",
            order=order,
            **FAST,
        )
    )
    records = enh.last_record["faces"]
    assert [r["index"] for r in records] == [1, 2]
    by_side = sorted(records, key=lambda r: r["box"][0])
    face = {"left": by_side[0], "right": by_side[1]}
    other = "right" if first == "left" else "left"
    assert records[0] is not None and box_of(records[0]) == box_of(face[first])
    assert [c["prompt"] for c in spy] == ["PROMPT-A", "PROMPT-B"]
    assert [c["negative"] for c in spy] == ["NEG-A", "NEG-B"]
    # the crop repainted with PROMPT-A is the first face's, PROMPT-B's the other's
    assert np.array_equal(spy[0]["image"], crop(two_faces, face[first]["crop"]))
    assert np.array_equal(spy[1]["image"], crop(two_faces, face[other]["crop"]))
    assert face[first]["prompt"] == "PROMPT-A" and face[other]["prompt"] == "PROMPT-B"
    assert enh.last_record["prompt"] == "PROMPT-A [SEP] PROMPT-B"
    for r in records:
        assert changed(out, two_faces)[r["box"][1] : r["box"][3], r["box"][0] : r["box"][2]].any()


def test_faces_picks_one_and_leaves_the_other_exact(enh, two_faces, spy) -> None:
    out = np.asarray(
        enh.facefix(
            Image.fromarray(two_faces), faces="2", order="left-right", prompt="ONLY", **FAST
        )
    )
    left, right = enh.last_record["faces"]
    assert "strength" not in left and right["prompt"] == "ONLY"
    assert [c["prompt"] for c in spy] == ["ONLY"]
    assert np.array_equal(spy[0]["image"], crop(two_faces, right["crop"]))
    diff = changed(out, two_faces)
    x0, y0, x1, y1 = right["crop"]
    assert diff[y0:y1, x0:x1].any()
    outside = np.ones(diff.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert not diff[outside].any()  # the left face and everything else are untouched


def test_a_missing_face_number_is_reported_and_nothing_loads(stand_in, caplog) -> None:
    stand_in.extend([Face(10, 10, 60, 60, 3.0), Face(100, 10, 150, 60, 2.0)])
    image = Image.fromarray(data.astronaut()[:200, :200])
    logger = logging.getLogger("sdenhance")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="sdenhance")
    try:
        enh = Enhancer("nobody/missing")  # would fail if a model loaded
        out = enh.facefix(image, detector="stand-in", faces="3")
    finally:
        logger.removeHandler(caplog.handler)
    assert np.array_equal(np.asarray(out), np.asarray(image))
    assert "face(s) 3 asked for, but 2 found" in caplog.text


@pytest.mark.parametrize(
    ("values", "word"),
    [({"faces": "0"}, "`faces`"), ({"faces": "1-3"}, "`faces`"), ({"order": "size"}, "`order`")],
)
def test_bad_pick_options_fail_before_loading(values, word) -> None:
    with pytest.raises(SdenhanceError, match=word):
        Enhancer("nobody/missing").facefix(Image.fromarray(data.astronaut()[:64, :64]), **values)


def test_cli_options_reach_the_stage(models, enh, two_faces, tmp_path) -> None:
    Image.fromarray(two_faces).save(tmp_path / "two.png")
    args = ["facefix", str(tmp_path / "two.png"), "--model", models["sd15"], "--faces", "1"]
    args += ["--order", "largest", "--prompt", "BIG [SEP] SMALL", "--steps", "2", "--seed", "1"]
    args += ["--no-color-match", "--min-face", "40", "-o", str(tmp_path / "out.png")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = enh.facefix(
        Image.fromarray(two_faces),
        faces="1",
        order="largest",
        prompt="BIG [SEP] SMALL",
        min_face=40,
        **FAST,
    )
    got = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert np.array_equal(got, np.asarray(expected))
    big = enh.last_record["faces"][0]
    assert big["prompt"] == "BIG" and "strength" not in enh.last_record["faces"][1]
    bad = CliRunner().invoke(app, ["facefix", str(tmp_path / "two.png"), "--faces", "x"])
    assert bad.exit_code == 2 and "faces" in bad.stderr
