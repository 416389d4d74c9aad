"""Face detection on scikit-image's photos, and exact face-mask and face-crop geometry."""

from __future__ import annotations

import math
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data

from sdenhance.detectors import faces as detectors
from sdenhance.detectors.faces import (
    FaceDetector,
    LbpFaceDetector,
    decode_ultraface,
    detect_faces,
    get_detector,
    register_detector,
)
from sdenhance.errors import SdenhanceError
from sdenhance.ops.faces import Face, face_crop, face_mask

# The astronaut's face in the 512×512 photo, eyebrows to chin, read off the image by eye.
ASTRONAUT_FACE = (180, 70, 265, 165)


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def scaled(box: tuple[int, ...], s: float) -> tuple[int, ...]:
    return tuple(round(v * s) for v in box)


# --- detection on real photos -----------------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def test_astronaut_has_exactly_one_face_on_her_face(astronaut: np.ndarray) -> None:
    found = detect_faces(astronaut.astype(np.float32) / 255.0)
    assert len(found) == 1
    assert iou(found[0].box, ASTRONAUT_FACE) > 0.6
    assert found[0].score >= LbpFaceDetector.min_score


def test_pil_float_and_uint8_inputs_reach_the_detector_alike(astronaut: np.ndarray) -> None:
    det = FixedDetector([])
    detect_faces(Image.fromarray(astronaut).convert("RGBA"), detector=det)
    detect_faces(astronaut.astype(np.float64) / 255.0, detector=det)
    detect_faces(np.asfortranarray(astronaut), detector=det)
    for seen in det.arrays:
        np.testing.assert_array_equal(seen, astronaut)


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_no_faces_in_a_coffee_cup_or_a_cat(name: str) -> None:
    assert detect_faces(getattr(data, name)()) == []


def test_downscaled_astronaut_still_detects(astronaut: np.ndarray) -> None:
    small = cv2.resize(astronaut, (192, 192), interpolation=cv2.INTER_AREA)
    found = detect_faces(small)
    assert len(found) == 1
    assert iou(found[0].box, scaled(ASTRONAUT_FACE, 192 / 512)) > 0.6


def test_upscaled_astronaut_detects_on_a_smaller_copy_and_maps_back(astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    found = detect_faces(big, max_side=512)  # detection runs at half size
    assert len(found) == 1
    assert iou(found[0].box, scaled(ASTRONAUT_FACE, 2)) > 0.6


def test_two_faces_found_and_max_faces_keeps_the_best(astronaut: np.ndarray) -> None:
    half = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    pair = np.concatenate([half, half[:, ::-1]], axis=1)  # mirrored twin on the right
    found = detect_faces(pair)
    left, right = scaled(ASTRONAUT_FACE, 0.5), scaled(ASTRONAUT_FACE, 0.5)
    right = (512 - right[2], right[1], 512 - right[0], right[3])
    assert len(found) == 2
    assert {iou(f.box, left) > 0.5 for f in found} == {True, False}
    assert {iou(f.box, right) > 0.5 for f in found} == {True, False}
    assert found[0].score >= found[1].score
    assert detect_faces(pair, max_faces=1) == found[:1]


def test_greyscale_photo_still_finds_the_face(astronaut: np.ndarray) -> None:
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    found = detect_faces(grey)  # no skin check on grey images: the face is still the best
    assert iou(found[0].box, ASTRONAUT_FACE) > 0.6


# --- detect_faces' own logic, with a stand-in detector ----------------------------------------


class FixedDetector:
    """Returns the given faces (in the pixels of the array it is called with)."""

    min_score = 2.0

    def __init__(self, found: list[Face]) -> None:
        self.found = found
        self.arrays: list[np.ndarray] = []

    def __call__(self, rgb_u8: np.ndarray) -> list[Face]:
        assert rgb_u8.dtype == np.uint8 and rgb_u8.flags.c_contiguous
        self.arrays.append(rgb_u8)
        return list(self.found)


def test_stand_in_detector_satisfies_the_protocol() -> None:
    assert isinstance(FixedDetector([]), FaceDetector)
    assert isinstance(get_detector(), FaceDetector)


def test_boxes_map_back_from_the_downscaled_copy() -> None:
    det = FixedDetector([Face(10, 20, 41, 50, 5.0)])
    found = detect_faces(np.zeros((800, 2000, 3), np.uint8), detector=det, max_side=1000)
    assert [a.shape for a in det.arrays] == [(400, 1000, 3)]
    # floor of the start, ceil of the end: the box never shrinks
    assert found == [Face(20, 40, 82, 100, 5.0)]


def test_scores_sizes_overlaps_order_and_cap() -> None:
    det = FixedDetector(
        [
            Face(0, 0, 30, 30, 3.0),
            Face(100, 0, 160, 60, 9.0),
            Face(105, 5, 150, 50, 8.0),  # inside the 9.0 face: merged away
            Face(200, 0, 240, 40, 1.9),  # below the detector's min_score 2.0
            Face(300, 0, 320, 20, 6.0),  # smaller than min_size 24
            Face(400, 0, 440, 40, 3.0),  # ties the first on score, larger
        ]
    )
    image = np.zeros((100, 500, 3), np.uint8)
    assert [f.box for f in detect_faces(image, detector=det)] == [
        (100, 0, 160, 60),
        (400, 0, 440, 40),
        (0, 0, 30, 30),
    ]
    assert [f.score for f in detect_faces(image, detector=det, max_faces=2)] == [9.0, 3.0]
    assert len(detect_faces(image, detector=det, min_score=0.0, min_size=1)) == 5
    assert detect_faces(image, detector=det, min_score=10.0) == []


@pytest.mark.parametrize(
    ("image", "kwargs"),
    [
        (np.zeros((64, 64), np.float32), {}),
        (np.zeros((64, 64, 4), np.float32), {}),
        (np.full((64, 64, 3), 1.5, np.float32), {}),
        (np.full((64, 64, 3), np.nan, np.float32), {}),
        (np.zeros((64, 64, 3), np.int32), {}),
        (np.zeros((64, 64, 3), np.float32), {"max_faces": 0}),
        (np.zeros((64, 64, 3), np.float32), {"min_size": 0}),
    ],
)
def test_bad_detection_input_is_a_user_error(image: np.ndarray, kwargs: dict) -> None:
    with pytest.raises(SdenhanceError):
        detect_faces(image, detector=FixedDetector([]), **kwargs)


def test_tiny_image_has_no_faces() -> None:
    assert detect_faces(np.full((10, 12, 3), 0.5, np.float32)) == []


def test_face_box_must_not_be_empty() -> None:
    with pytest.raises(SdenhanceError, match="x1 > x0"):
        Face(5, 0, 5, 10, 1.0)
    face = Face(10, 20, 40, 80, 1.0)
    assert (face.width, face.height, face.center) == (30, 60, (25.0, 50.0))


# --- detectors: registry and the ONNX path ----------------------------------------------------


def test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detectors, "DETECTORS", dict(detectors.DETECTORS))
    assert isinstance(get_detector(), LbpFaceDetector)
    assert isinstance(get_detector("lbp"), LbpFaceDetector)
    register_detector("fixed", lambda: FixedDetector([]))
    assert isinstance(get_detector("fixed"), FixedDetector)
    with pytest.raises(ValueError, match="already registered"):
        register_detector("lbp", LbpFaceDetector)
    with pytest.raises(SdenhanceError, match="unknown face detector `yolo`.*fixed, lbp"):
        get_detector("yolo")


def test_missing_onnx_file_is_named(tmp_path) -> None:
    path = tmp_path / "version-RFB-320.onnx"
    with pytest.raises(SdenhanceError, match="version-RFB-320.onnx` not found"):
        get_detector(str(path))


def test_onnx_without_onnxruntime_names_the_extra(tmp_path, monkeypatch) -> None:
    path = tmp_path / "version-RFB-320.onnx"
    path.write_bytes(b"not read before onnxruntime is imported")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(SdenhanceError, match=r"pip install 'sdenhance\[onnx\]'"):
        get_detector(path)


def test_ultraface_outputs_decode_to_image_pixels() -> None:
    scores = np.array([[[0.1, 0.9], [0.2, 0.8], [0.5, 0.5], [0.95, 0.05]]], np.float32)
    boxes = np.array(
        [[[0.1, 0.1, 0.3, 0.4], [0.11, 0.1, 0.31, 0.4], [0.6, 0.5, 0.8, 0.9], [0, 0, 1, 1]]],
        np.float32,
    )
    found = decode_ultraface([boxes, scores], 200, 100, candidate_score=0.3)
    # the 0.8 box overlaps the 0.9 one (NMS); the 0.05 one is background
    assert [(f.box, round(f.score, 2)) for f in found] == [
        ((20, 10, 60, 40), 0.9),
        ((120, 50, 160, 90), 0.5),
    ]
    with pytest.raises(SdenhanceError, match="scores"):
        decode_ultraface([boxes], 200, 100, 0.3)


# --- face_mask ----------------------------------------------------------------------------------


def normalised_radius(face: Face, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    cx, cy = face.center
    xx = (np.arange(w) + 0.5 - cx) / face.width
    yy = (np.arange(h) + 0.5 - cy) / face.height
    return np.hypot(yy[:, None], xx[None, :])


def test_mask_is_one_inside_zero_outside_and_falls_between() -> None:
    face = Face(30, 20, 70, 80, 1.0)
    mask = face_mask(face, (120, 110), dilate=0.15, feather=0.1)
    r = normalised_radius(face, (120, 110))
    assert mask.shape == (110, 120) and mask.dtype == np.float32
    assert np.all(mask[r <= 0.65] == 1.0)
    assert np.all(mask[r >= 0.75] == 0.0)
    ramp = (r > 0.65) & (r < 0.75)
    assert ramp.any() and np.all((mask[ramp] > 0) & (mask[ramp] < 1))
    # falls monotonically with the radius
    order = np.argsort(r[ramp])
    assert np.all(np.diff(mask[ramp][order]) <= 1e-6)


def test_hard_mask_written_out() -> None:
    # circle of radius 2 (box side 4, no growth) about (4, 4): pixel centres within it
    mask = face_mask(Face(2, 2, 6, 6, 1.0), (8, 8), dilate=0.0, feather=0.0)
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 1, 1, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ],
        np.float32,
    )
    np.testing.assert_array_equal(mask, expected)


# faces touching each edge and each corner of a 100×80 image
EDGE_FACES = [
    Face(0, 30, 30, 60, 1.0),  # left
    Face(70, 30, 100, 60, 1.0),  # right
    Face(40, 0, 70, 30, 1.0),  # top
    Face(40, 50, 70, 80, 1.0),  # bottom
    Face(0, 0, 30, 30, 1.0),  # top-left
    Face(70, 0, 100, 30, 1.0),  # top-right
    Face(0, 50, 30, 80, 1.0),  # bottom-left
    Face(70, 50, 100, 80, 1.0),  # bottom-right
    Face(0, 0, 100, 80, 1.0),  # the whole image
]


@pytest.mark.parametrize("face", EDGE_FACES)
def test_mask_at_borders_is_the_same_mask_cut_off(face: Face) -> None:
    pad = 60
    shifted = Face(face.x0 + pad, face.y0 + pad, face.x1 + pad, face.y1 + pad, 1.0)
    full = face_mask(shifted, (100 + 2 * pad, 80 + 2 * pad))
    cut = face_mask(face, (100, 80))
    np.testing.assert_array_equal(cut, full[pad : pad + 80, pad : pad + 100])
    assert full.sum() > cut.sum()  # part of the grown ellipse was cut off


def test_mask_of_a_face_off_the_image_is_empty() -> None:
    assert not face_mask(Face(500, 500, 540, 540, 1.0), (100, 80)).any()


@pytest.mark.parametrize(
    "kwargs", [{"dilate": -0.5}, {"feather": -0.1}, {"dilate": math.nan}, {"feather": math.inf}]
)
def test_bad_mask_options(kwargs: dict) -> None:
    with pytest.raises(SdenhanceError):
        face_mask(Face(0, 0, 10, 10, 1.0), (20, 20), **kwargs)


def test_bad_image_size() -> None:
    with pytest.raises(SdenhanceError, match="image_size"):
        face_mask(Face(0, 0, 10, 10, 1.0), (0, 20))
    with pytest.raises(SdenhanceError, match="image_size"):
        face_crop(Face(0, 0, 10, 10, 1.0), (20, -1))


# --- face_crop ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("face", "size", "kwargs", "expected"),
    [
        # 32 px face, 16 px margins: 64, centred
        (Face(100, 100, 132, 132, 1), (512, 512), {}, (84, 84, 148, 148)),
        # 30 px -> 60 -> 64 (multiple of 8); centre 25 - 32 < 0: shifted to the corner
        (Face(10, 10, 40, 40, 1), (512, 512), {}, (0, 0, 64, 64)),
        # longer side 30 -> 64; pushed back from the bottom-right corner
        (Face(480, 490, 510, 512, 1), (512, 512), {}, (448, 448, 512, 512)),
        # odd sums: x (249 - 64) / 2 = 92.5 and y (231 - 64) / 2 = 83.5 floor
        (Face(109, 100, 140, 131, 1), (512, 512), {}, (92, 83, 156, 147)),
        # image narrower than the side: whole width, square part along y
        (Face(10, 100, 40, 130, 1), (50, 300), {}, (0, 83, 50, 147)),
        # both axes shorter: the whole image
        (Face(10, 10, 40, 40, 1), (50, 60), {}, (0, 0, 50, 60)),
        # side exactly the image: the whole image
        (Face(16, 16, 48, 48, 1), (64, 64), {}, (0, 0, 64, 64)),
        # no padding, no rounding
        (Face(10, 20, 31, 33, 1), (100, 100), {"padding": 0.0, "multiple": 1}, (10, 16, 31, 37)),
        # padding 1 each side: 3 × 20 = 60 -> 64
        (Face(40, 40, 60, 60, 1), (200, 200), {"padding": 1.0}, (18, 18, 82, 82)),
    ],
)
def test_crop_written_out(face: Face, size: tuple, kwargs: dict, expected: tuple) -> None:
    assert face_crop(face, size, **kwargs) == expected


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
    fw=st.integers(1, 120),
    fh=st.integers(1, 120),
    padding=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
def test_crop_properties(w, h, fx, fy, fw, fh, padding) -> None:
    fw, fh = min(fw, w), min(fh, h)
    x0, y0 = round(fx * (w - fw)), round(fy * (h - fh))
    face = Face(x0, y0, x0 + fw, y0 + fh, 1.0)
    cx0, cy0, cx1, cy1 = face_crop(face, (w, h), padding=padding)
    side = math.ceil(max(fw, fh) * (1 + 2 * padding) / 8) * 8
    assert 0 <= cx0 < cx1 <= w and 0 <= cy0 < cy1 <= h
    assert cx1 - cx0 == min(side, w) and cy1 - cy0 == min(side, h)
    # the face is always inside its crop
    assert cx0 <= face.x0 and face.x1 <= cx1 and cy0 <= face.y0 and face.y1 <= cy1


@pytest.mark.parametrize("kwargs", [{"padding": -0.1}, {"padding": math.nan}, {"multiple": 0}])
def test_bad_crop_options(kwargs: dict) -> None:
    with pytest.raises(SdenhanceError):
        face_crop(Face(0, 0, 10, 10, 1.0), (20, 20), **kwargs)
