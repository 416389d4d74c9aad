"""Diagnosis: the measures on known signals, the findings on degraded real photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from sdenhance import SdenhanceError
from sdenhance.enhance.run import diagnose_image
from sdenhance.io.metadata import ImageMetadata
from sdenhance.ops import image_stats as st
from sdenhance.ops.diagnose import FINDINGS, diagnose


def noisy(rgb: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rgb + rng.normal(0, sigma, rgb.shape)), 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def text_page(font_px: int = 16, size=(480, 560)) -> np.ndarray:
    rng = np.random.default_rng(3)
    words = "the image of a page with words in lines and some more text to read here".split()
    im = Image.new("RGB", size, (250, 250, 245))
    draw, font = ImageDraw.Draw(im), ImageFont.load_default(size=font_px)
    for y in range(20, size[1] - 30, int(font_px * 1.6)):
        draw.text((20, y), " ".join(rng.choice(words, 9)), fill=(15, 15, 15), font=font)
    return np.asarray(im)


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return data.coffee()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


# --- the measures on signals whose answer is known ---------------------------------------------


@pytest.mark.parametrize("sigma", [3.0, 8.0, 15.0])
def test_noise_sigma_reads_white_noise_on_a_smooth_gradient(sigma):
    ramp = np.linspace(60, 190, 256)[None, :, None].repeat(256, 0).repeat(3, 2)
    assert st.noise_sigma([noisy(ramp, sigma)]) == pytest.approx(sigma, rel=0.15)
    assert st.noise_sigma([np.rint(ramp).astype(np.uint8)]) < 0.5


def _disc(sigma: float) -> np.ndarray:
    """A disc (edges in every direction) drawn at 8× and area-shrunk, then blurred by `sigma`."""
    big = np.full((1600, 1600), 40, np.uint8)
    cv2.circle(big, (800, 800), 480, 210, -1)
    im = cv2.resize(big, (200, 200), interpolation=cv2.INTER_AREA).astype(np.float32)
    if sigma:
        im = cv2.GaussianBlur(im, (0, 0), sigma)
    return np.repeat(np.rint(im).astype(np.uint8)[..., None], 3, 2)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_edge_blur_reads_the_sigma_of_a_blurred_step(sigma):
    own = st.edge_blur([_disc(0)]).sigma  # the pixel grid's own edge width
    assert own < 0.9
    found = st.edge_blur([_disc(sigma)])
    # Gaussian blurs add in variance
    assert found.sigma == pytest.approx(np.hypot(sigma, own), rel=0.1)
    assert found.sigma_max / found.sigma_min < 1.3  # isotropic


def test_blockiness_sees_an_8px_grid_and_not_a_24px_text_rhythm():
    rng = np.random.default_rng(0)
    blocks = np.kron(rng.integers(80, 170, (32, 32)), np.ones((8, 8)))  # 8-px flat blocks
    smooth = cv2.GaussianBlur(blocks.astype(np.float32), (0, 0), 0.01)
    rgb = np.repeat(
        np.clip(smooth + rng.normal(0, 2, smooth.shape), 0, 255).astype(np.uint8)[..., None], 3, 2
    )
    assert st.blockiness([rgb]) > 1.0
    rows = np.zeros((256, 256), np.uint8)
    rows[::24] = 200  # lines every 24 px: periodic in one direction only
    assert st.blockiness([np.repeat(rows[..., None], 3, 2)]) < 0.1


def test_grey_edge_gains_undo_a_channel_gain(coffee):
    cast = np.clip(coffee * np.array([1.0, 1.0, 0.7]), 0, 255).astype(np.uint8)
    before, after = st.grey_edge_gains(coffee), st.grey_edge_gains(cast)
    # the cast divides blue edges by 0.7 relative to the original's own estimate
    assert after[2] / after[1] == pytest.approx(before[2] / before[1] / 0.7, rel=0.03)


# --- findings on degraded real photos ----------------------------------------------------------


def test_clean_photo_has_none_of_the_degradations(astronaut):
    d = diagnose_image(astronaut)
    for name in ("noise", "blur", "jpeg", "text", "illustration", "old_photo", "cast"):
        assert not d.present(name), d[name]
    assert d.present("faces") and d["faces"].value == 1
    assert d.present("size") and d["size"].value == pytest.approx(4.0)


@pytest.mark.parametrize("sigma", [5, 10, 20])
def test_noise_is_found_and_measured(coffee, sigma):
    d = diagnose(noisy(coffee, sigma))
    assert d.present("noise")
    assert d["noise"].value == pytest.approx(sigma, rel=0.25)
    assert not d.present("blur") and not d.present("jpeg")


@pytest.mark.parametrize("sigma", [1.5, 2.5])
def test_gaussian_blur_is_found_with_its_sigma(coffee, sigma):
    d = diagnose(cv2.GaussianBlur(coffee, (0, 0), sigma))
    assert d.present("blur") and d["blur"].detail["kind"] == "gaussian"
    assert d["blur"].detail["sigma_median"] == pytest.approx(sigma, rel=0.25)
    assert not d.present("noise")


def test_motion_blur_is_found_with_its_direction(astronaut):
    k = np.zeros((11, 11), np.float32)
    k[5, :] = 1.0 / 11  # horizontal motion: vertical edges smear, gradients along x soften
    d = diagnose(cv2.filter2D(astronaut, -1, k))
    assert d.present("blur") and d["blur"].detail["kind"] == "motion"
    assert min(d["blur"].detail["angle"], 180 - d["blur"].detail["angle"]) <= 22.5


@pytest.mark.parametrize("quality", [15, 30])
def test_jpeg_blocking_is_found(coffee, quality):
    assert diagnose(jpeg(coffee, quality)).present("jpeg")
    assert not diagnose(jpeg(coffee, 95)).present("jpeg")


@pytest.mark.parametrize("font_px", [12, 18])
def test_text_page_is_text_and_photos_are_not(font_px, coffee, astronaut):
    page = text_page(font_px)
    d = diagnose(page)
    assert d.present("text") and d["text"].detail["lines"] >= 10
    assert not d.present("illustration")  # flat, but text
    assert diagnose(cv2.GaussianBlur(page, (0, 0), 1.5)).present("text")
    assert not diagnose(coffee).present("text") and not diagnose(astronaut).present("text")


def test_old_photo_greyscale_and_sepia(astronaut):
    grey = np.repeat(data.camera()[..., None], 3, 2)
    assert diagnose(grey).present("old_photo")
    y = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
    sepia = np.clip((40 + 0.7 * y) * np.array([1.07, 0.95, 0.74]), 0, 255).astype(np.uint8)
    d = diagnose(sepia)
    assert d.present("old_photo") and d["old_photo"].detail["tint"] > 8  # toned, not grey
    assert not diagnose(astronaut).present("old_photo")


def test_flat_colour_art_is_an_illustration(coffee):
    im = Image.new("RGB", (400, 300), (90, 140, 200))
    draw = ImageDraw.Draw(im)
    for i, colour in enumerate([(230, 80, 60), (250, 220, 90), (60, 170, 90), (120, 60, 140)]):
        draw.ellipse(
            [30 + 80 * i, 40 + 30 * i, 150 + 80 * i, 170 + 30 * i],
            fill=colour,
            outline=(10, 10, 10),
            width=3,
        )
    assert diagnose(np.asarray(im)).present("illustration")
    assert not diagnose(coffee).present("illustration")


def test_overexposure_is_clipping(coffee):
    bright = np.clip(coffee.astype(np.float32) * 1.6, 0, 255).astype(np.uint8)
    assert diagnose(bright).present("clipping")
    assert diagnose(bright)["clipping"].detail["highlights"] > 0.05


def test_ai_generated_from_metadata_only():
    rgb = np.full((64, 64, 3), 128, np.uint8)
    made = ImageMetadata(
        parameters={"Prompt": "a castle at dusk"}, raw_parameters="a castle at dusk"
    )
    d = diagnose(rgb, metadata=made)
    assert d.present("ai_generated") and d["ai_generated"].detail["prompt"] == "a castle at dusk"
    assert not diagnose(rgb, metadata=ImageMetadata()).present("ai_generated")
    unknown = diagnose(rgb)["ai_generated"]
    assert unknown.value is None and unknown.confidence == 0.0


# --- the contract: names, shape, odd inputs ----------------------------------------------------


def test_findings_have_the_scripted_names_and_fields(astronaut):
    d = diagnose_image(astronaut)
    out = json.loads(json.dumps(d.to_dict()))  # plain JSON, no NaN
    assert [f["name"] for f in out["findings"]] == list(FINDINGS)
    for f in out["findings"]:
        assert {"name", "value", "threshold", "present", "confidence"} <= set(f)
        assert 0.0 <= f["confidence"] <= 1.0


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 5), (40, 40), (8, 300)])
def test_tiny_and_thin_images_get_every_finding(shape):
    rng = np.random.default_rng(0)
    d = diagnose_image((rng.random((*shape, 3)) * 255).astype(np.uint8))
    assert [f.name for f in d.findings] == list(FINDINGS)


def test_bad_inputs_are_user_errors():
    with pytest.raises(SdenhanceError, match="uint8"):
        diagnose(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(SdenhanceError, match="shape"):
        diagnose(np.zeros((8, 8), np.uint8))
    with pytest.raises(SdenhanceError, match="target"):
        diagnose(np.zeros((8, 8, 3), np.uint8), target=0)
