"""Loading, saving and metadata of images (sdenhance.image)."""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import stat
import struct
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import tifffile
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from sdenhance import __version__
from sdenhance.errors import SdenhanceError
from sdenhance.io import depth
from sdenhance.io.infotext import format_infotext, infotext_fields, parse_infotext
from sdenhance.io.load import load_image, read_metadata
from sdenhance.io.loaded import DEFAULT_MAX_PIXELS
from sdenhance.io.metadata import ImageMetadata, parse_midjourney
from sdenhance.io.save import save_image

DATA = Path(skimage.__file__).parent / "data"


# ---------------------------------------------------------------------------------- helpers


def astronaut(w: int = 64, h: int = 48) -> Image.Image:
    """A real photo crop: asymmetric, so every flip/rotation is visible."""
    return Image.open(DATA / "astronaut.png").convert("RGB").crop((150, 40, 150 + w, 40 + h))


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int64)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(array: np.ndarray, color_type: int, depth: int = 8) -> bytes:
    """A minimal PNG written by hand (Pillow cannot write 16-bit grey+alpha or fake headers)."""
    h, w = array.shape[:2]
    dtype = ">u2" if depth == 16 else "u1"
    rows = b"".join(
        b"\x00" + np.ascontiguousarray(array[y]).astype(dtype).tobytes() for y in range(h)
    )
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 grey PNG whose IHDR (with a valid CRC) claims `width` x `height`."""
    data = bytearray(raw_png(np.zeros((1, 1), np.uint8), 0))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8 + 3 + 67)


def icc_profile(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """An ICC v2 profile assembled from its tags (header, tag table, 4-byte aligned data)."""
    base = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags.items():
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", base + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    header = (
        struct.pack(">I", 128 + len(body))
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + device_class
        + space
        + pcs
        + bytes(12)
        + b"acsp"
        + bytes(16 + 8 + 4)
        + d50
        + bytes(4 + 16 + 28)
    )
    return header + body


# Adobe RGB (1998): D50-adapted colorants, gamma 563/256
ADOBE_XYZ = np.array(
    [[0.60974, 0.31111, 0.01947], [0.20528, 0.62567, 0.06087], [0.14919, 0.06322, 0.74457]]
)
SRGB_XYZ = np.array(
    [
        [0.4360747, 0.2225045, 0.0139322],
        [0.3850649, 0.7168786, 0.0971045],
        [0.1430804, 0.0606169, 0.7141733],
    ]
)
ADOBE_GAMMA = 563 / 256


def adobe_like_profile() -> bytes:
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(ADOBE_GAMMA * 256)) + bytes(2)
    tags = {b"desc": _desc("Adobe-like RGB"), b"wtpt": _xyz(0.9642, 1.0, 0.8249)}
    tags.update({sig: _xyz(*ADOBE_XYZ[i]) for i, sig in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))})
    tags.update({sig: curve for sig in (b"rTRC", b"gTRC", b"bTRC")})
    return icc_profile(b"mntr", b"RGB ", b"XYZ ", tags)


def cmyk_profile() -> bytes:
    """A CMYK output profile: a 2-point lut16 CLUT from the 16 ink corners to Lab."""
    from skimage.color import rgb2lab

    clut = b""
    for c, m, y, k in itertools.product((0, 1), repeat=4):
        rgb = np.array([[[(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)]]], np.float64)
        lab_l, lab_a, lab_b = rgb2lab(rgb)[0, 0]
        ab = [round((float(np.clip(v, -128, 127)) + 128) * 256) for v in (lab_a, lab_b)]
        clut += struct.pack(">HHH", round(lab_l / 100 * 0xFF00), *ab)
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (
        b"mft2"
        + bytes(4)
        + struct.pack(">BBBB", 4, 3, 2, 0)
        + identity
        + struct.pack(">HH", 2, 2)
        + struct.pack(">HH", 0, 65535) * 4
        + clut
        + struct.pack(">HH", 0, 65535) * 3
    )
    return icc_profile(
        b"prtr",
        b"CMYK",
        b"Lab ",
        {b"desc": _desc("Test CMYK"), b"wtpt": _xyz(0.9642, 1.0, 0.8249), b"A2B0": lut},
    )


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def scaled16(values: np.ndarray) -> np.ndarray:
    return np.rint(values.astype(np.float64) * 255 / 65535).astype(np.int64)


@pytest.fixture
def sdlog(caplog):
    """Capture the sdenhance logger even when a CLI test turned its propagation off."""
    logger = logging.getLogger("sdenhance")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


RECORD = {
    "steps": [
        {"stage": "denoise", "options": {"strength": None, "method": "nlmeans"}},
        {
            "stage": "upscale",
            "options": {
                "scale": 4,
                "creativity": 0.35,
                "resemblance": 0.6,
                "steps": 20,
                "guidance": 6.0,
                "scheduler": "dpmpp-2m-karras",
                "upscaler": "realesrgan-x4plus",
                "tile": 512,
                "color_fix": "wavelet",
                "prompt": "a portrait of an astronaut, 35mm: sharp",
            },
        },
        {"stage": "colorfix", "options": {"method": "wavelet"}},
    ],
    "seed": 123,
    "models": {
        "model": "/models/realisticVision_v60.safetensors",
        "model_hash": "abcdef0123",
        "controlnet": "lllyasviel/control_v11f1e_sd15_tile",
        "controlnet_hash": "a371b31b",
    },
    "negative_prompt": "blurry, lowres, (plastic skin:1.2)",
    "size_in": [64, 48],
}


# ---------------------------------------------------------------------------------- loading: modes


def test_real_rgb_photo_loads_unchanged(tmp_path):
    loaded = load_image(DATA / "astronaut.png")
    assert (loaded.format, loaded.image.mode, loaded.size, loaded.alpha) == (
        "PNG",
        "RGB",
        (512, 512),
        None,
    )
    assert np.array_equal(px(loaded.image), px(Image.open(DATA / "astronaut.png").convert("RGB")))
    assert loaded.notes == [] and loaded.path == DATA / "astronaut.png"
    # its sRGB profile rides along for the outputs; nothing else of the file's info does
    assert loaded.image.info == {
        "icc_profile": Image.open(DATA / "astronaut.png").info["icc_profile"]
    }


def test_grayscale_photo_becomes_equal_rgb_channels():
    loaded = load_image(DATA / "camera.png")
    gray = px(Image.open(DATA / "camera.png"))
    rgb = px(loaded.image)
    assert loaded.source_mode == "L" and loaded.image.mode == "RGB"
    for c in range(3):
        assert np.array_equal(rgb[:, :, c], gray)


def test_palette_with_transparency_becomes_alpha(tmp_path):
    pal = astronaut().quantize(16)
    indices = px(pal)
    transparent = int(indices[0, 0])
    pal.save(tmp_path / "p.png", transparency=transparent)
    loaded = load_image(tmp_path / "p.png")
    assert loaded.source_mode == "P" and loaded.alpha is not None and loaded.alpha.mode == "L"
    alpha = px(loaded.alpha)
    assert np.array_equal(alpha == 0, indices == transparent)
    assert set(np.unique(alpha)) <= {0, 255}
    palette = np.array(pal.getpalette()[: 3 * 16]).reshape(-1, 3)
    assert np.array_equal(px(loaded.image), palette[indices])


def test_palette_without_transparency_has_no_alpha(tmp_path):
    astronaut().quantize(8).save(tmp_path / "p.png")
    loaded = load_image(tmp_path / "p.png")
    assert loaded.alpha is None and loaded.image.mode == "RGB"


def test_grey_with_alpha(tmp_path):
    gray = astronaut().convert("L")
    alpha = Image.linear_gradient("L").resize(gray.size)
    Image.merge("LA", (gray, alpha)).save(tmp_path / "la.png")
    loaded = load_image(tmp_path / "la.png")
    assert loaded.source_mode == "LA"
    assert np.array_equal(px(loaded.alpha), px(alpha))
    assert np.array_equal(px(loaded.image)[:, :, 1], px(gray))


def test_bilevel_becomes_black_and_white(tmp_path):
    astronaut().convert("1").save(tmp_path / "bw.png")
    loaded = load_image(tmp_path / "bw.png")
    assert loaded.source_mode == "1"
    assert set(np.unique(px(loaded.image))) <= {0, 255}
    assert np.array_equal(
        px(loaded.image)[:, :, 0], px(Image.open(tmp_path / "bw.png").convert("L"))
    )


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1, 128, 129, 1000, 32767, 32768, 40000, 65534, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    loaded = load_image(tmp_path / "g16.png")
    assert loaded.source_mode.startswith("I")
    assert px(loaded.image)[:, :, 0].tolist() == scaled16(values).tolist()  # 1000 -> 4, not 255
    assert "16-bit scaled to 8-bit" in loaded.notes


def test_16bit_rgba_png_is_read_at_full_precision(tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16)
    rgba[0, :, 0] = [0, 128, 129, 1000, 65535]  # Pillow alone would keep only the high byte
    cv2.imwrite(str(tmp_path / "c16.png"), rgba[:, :, [2, 1, 0, 3]])
    loaded = load_image(tmp_path / "c16.png")
    assert loaded.source_mode == "RGBA;16"
    assert np.array_equal(px(loaded.image), scaled16(rgba[:, :, :3]))
    assert np.array_equal(px(loaded.alpha), scaled16(rgba[:, :, 3]))


def test_16bit_grey_alpha_png(tmp_path):
    ga = np.array([[[1000, 65535], [40000, 0], [129, 32768]]], np.uint16)
    (tmp_path / "ga16.png").write_bytes(raw_png(ga, 4, 16))
    loaded = load_image(tmp_path / "ga16.png")
    assert px(loaded.image)[0, :, 0].tolist() == scaled16(ga[0, :, 0]).tolist()
    assert px(loaded.alpha)[0].tolist() == scaled16(ga[0, :, 1]).tolist()


def test_16bit_rgb_tiff_is_scaled_not_clipped(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    rgb[0, :, 1] = [0, 1, 128, 129, 257, 1000, 32767, 32768, 65534, 65535]
    tifffile.imwrite(tmp_path / "c16.tif", rgb, photometric="rgb")
    loaded = load_image(tmp_path / "c16.tif")
    assert (loaded.format, loaded.source_mode) == ("TIFF", "RGB;16")
    assert np.array_equal(px(loaded.image), scaled16(rgb))
    assert "16-bit scaled to 8-bit" in loaded.notes


def test_16bit_tiff_tifffile_cannot_decode_falls_back_to_8bit(tmp_path, monkeypatch):
    """LZW (Photoshop's usual 16-bit TIFF) needs the optional imagecodecs package in tifffile."""
    rgb = np.random.default_rng(3).integers(0, 65536, (6, 4, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c16.tif", rgb, photometric="rgb", compression="zlib")

    def no_codec(path):
        raise KeyError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(depth, "_tifffile_page", no_codec)
    loaded = load_image(tmp_path / "c16.tif")
    assert np.array_equal(px(loaded.image), rgb >> 8)
    assert any(n.startswith("16-bit TIFF read at 8-bit precision") for n in loaded.notes)


def test_float_grey_tiff_assumed_unit_range(tmp_path):
    values = np.array([[0.0, 0.25, 0.5, 1.0, 1.5, -0.2]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values)
    loaded = load_image(tmp_path / "f.tif")
    assert loaded.source_mode == "F"
    assert px(loaded.image)[0, :, 0].tolist() == [0, 64, 128, 255, 255, 0]
    assert "float values outside [0, 1] clipped" in loaded.notes


def test_float_rgb_tiff_pillow_cannot_parse(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.random((5, 7, 3), dtype=np.float32)
    tifffile.imwrite(tmp_path / "f3.tif", rgb, photometric="rgb")
    loaded = load_image(tmp_path / "f3.tif")
    assert (loaded.format, loaded.source_mode, loaded.size) == ("TIFF", "RGB;F32", (7, 5))
    assert np.array_equal(px(loaded.image), np.rint(rgb.astype(np.float64) * 255))


def test_multipage_tiff_uses_the_first_page():
    loaded = load_image(DATA / "multipage_rgb.tif")
    assert loaded.size == (10, 10) and "multi-page: used page 1 of 2" in loaded.notes


def test_cmyk_jpeg_without_profile(tmp_path):
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:8, :8] = (10, 200, 30, 40)
    cmyk[:8, 8:] = (0, 0, 0, 255)
    cmyk[8:, :8] = (255, 0, 0, 0)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=100)
    loaded = load_image(tmp_path / "c.jpg")
    assert loaded.source_mode == "CMYK"
    c, m, y, k = (cmyk[..., i].astype(np.float64) for i in range(4))
    naive = (
        np.stack([(255 - c) * (255 - k), (255 - m) * (255 - k), (255 - y) * (255 - k)], -1) / 255
    )
    assert np.abs(px(loaded.image) - naive).max() <= 3
    assert any("CMYK" in n and "without a colour profile" in n for n in loaded.notes)


def test_cmyk_jpeg_with_embedded_profile_is_colour_managed(tmp_path):
    profile = cmyk_profile()
    inks = np.array([[0, 0, 0, 0], [0, 0, 0, 255], [255, 0, 0, 0], [128, 64, 32, 16]], np.uint8)
    cmyk = np.repeat(np.repeat(inks[None], 8, 0), 8, 1)  # 8x8 flat JPEG blocks
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=100, icc_profile=profile)
    loaded = load_image(tmp_path / "c.jpg")
    got = px(loaded.image)[4, 4::8]
    assert np.abs(got[0] - 255).max() <= 2  # paper white
    assert got[1].max() <= 2  # full black
    assert got[2][1:].min() >= 240 and got[2][0] < 90  # cyan
    reference = ImageCms.profileToProfile(
        Image.fromarray(inks[None], "CMYK"),
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")),
        outputMode="RGB",
    )
    assert np.abs(got - px(reference)[0]).max() <= 3
    naive = px(Image.fromarray(inks[None], "CMYK").convert("RGB"))[0]
    assert np.abs(got[3] - naive[3]).max() > 20  # the profile, not the naive formula, was used
    assert any("embedded ICC profile 'Test CMYK'" in n for n in loaded.notes)


def test_wide_gamut_pixels_keep_their_profile(tmp_path):
    colours = np.array([[200, 120, 60], [60, 160, 200], [128, 128, 128], [230, 40, 90]], np.uint8)
    profile = adobe_like_profile()
    Image.fromarray(colours[None]).save(tmp_path / "adobe.png", icc_profile=profile)
    loaded = load_image(tmp_path / "adobe.png")
    assert np.array_equal(px(loaded.image)[0], colours)  # no conversion on the way in
    assert loaded.icc == profile and loaded.image.info["icc_profile"] == profile
    assert any("Adobe-like RGB" in n and "kept" in n for n in loaded.notes)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".avif", ".tif"])
def test_to_srgb_converts_wide_gamut_pixels_on_save(tmp_path, suffix):
    colours = np.array([[200, 120, 60], [60, 160, 200], [128, 128, 128], [230, 40, 90]], np.uint8)
    block = np.repeat(np.repeat(colours[None], 8, axis=0), 8, axis=1)  # 8x32, flat 8x8 patches
    Image.fromarray(block).save(tmp_path / "adobe.png", icc_profile=adobe_like_profile())
    loaded = load_image(tmp_path / "adobe.png")
    out = save_image(loaded.image, tmp_path / f"srgb{suffix}", to_srgb=True, quality=100)
    linear = (colours / 255.0) ** ADOBE_GAMMA
    xyz = linear @ ADOBE_XYZ
    expected = np.rint(srgb_encode(np.linalg.solve(SRGB_XYZ.T, xyz.T).T) * 255)
    got = px(Image.open(out).convert("RGB"))[4, 4::8]  # the middle row of each patch
    assert np.abs(got - expected).max() <= (2 if suffix in (".png", ".tif") else 6)
    assert np.abs(got - colours).max() > 20  # a real change, not a pass-through
    assert "icc_profile" not in Image.open(out).info


def test_srgb_profile_keeps_pixels(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    astronaut().save(tmp_path / "s.png", icc_profile=srgb)
    loaded = load_image(tmp_path / "s.png")
    assert np.array_equal(px(loaded.image), px(astronaut()))
    assert not any("ICC" in n for n in loaded.notes)


def test_unreadable_icc_profile_is_ignored_with_a_note(tmp_path):
    astronaut().save(tmp_path / "bad.png", icc_profile=b"not a profile at all" * 8)
    loaded = load_image(tmp_path / "bad.png")
    assert np.array_equal(px(loaded.image), px(astronaut()))
    assert any("unreadable ICC profile" in n for n in loaded.notes)


def test_rgba_keeps_alpha_aside(tmp_path):
    img = Image.open(DATA / "astronaut.png").convert("RGBA").crop((0, 0, 40, 30))
    alpha = Image.radial_gradient("L").resize((40, 30))
    img.putalpha(alpha)
    img.save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.image.mode == "RGB" and loaded.alpha.mode == "L"
    assert np.array_equal(px(loaded.alpha), px(alpha))
    assert np.array_equal(px(loaded.image), px(img.convert("RGB")))


# ---------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(
    ("orientation", "method"),
    [
        (6, Image.Transpose.ROTATE_270),
        (8, Image.Transpose.ROTATE_90),
        (3, Image.Transpose.ROTATE_180),
    ],
)
def test_exif_orientation_png_exact(tmp_path, orientation, method):
    img = astronaut(40, 24)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif)
    loaded = load_image(tmp_path / "o.png")
    assert np.array_equal(px(loaded.image), px(img.transpose(method)))
    assert f"applied EXIF orientation {orientation}" in loaded.notes
    src = px(img)
    if orientation == 6:  # 90° clockwise: the bottom-left pixel becomes the top-left
        assert loaded.size == (24, 40) and (px(loaded.image)[0, 0] == src[-1, 0]).all()
    if orientation == 8:  # 90° counter-clockwise: the top-right pixel becomes the top-left
        assert loaded.size == (24, 40) and (px(loaded.image)[0, 0] == src[0, -1]).all()


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_jpeg_rotates_alpha_free_photo(tmp_path, orientation):
    img = astronaut(64, 32)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "o.jpg")
    method = Image.Transpose.ROTATE_270 if orientation == 6 else Image.Transpose.ROTATE_90
    upright = px(Image.open(tmp_path / "o.jpg").convert("RGB").transpose(method))
    assert loaded.size == (32, 64)
    assert np.array_equal(px(loaded.image), upright)


def test_orientation_applies_to_alpha_too(tmp_path):
    img = astronaut(40, 24).convert("RGBA")
    alpha = np.zeros((24, 40), np.uint8)
    alpha[:, :10] = 255
    img.putalpha(Image.fromarray(alpha))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "o.png", exif=exif)
    loaded = load_image(tmp_path / "o.png")
    assert np.array_equal(px(loaded.alpha), np.rot90(alpha, -1))


# ---------------------------------------------------------------------------------- loading: refusals


def test_animated_webp_uses_frame_zero(tmp_path):
    frames = [
        Image.new("RGB", (16, 16), colour)
        for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))
    ]
    frames[0].save(
        tmp_path / "a.webp", save_all=True, append_images=frames[1:], duration=80, lossless=True
    )
    loaded = load_image(tmp_path / "a.webp")
    assert loaded.format == "WEBP"
    assert np.array_equal(px(loaded.image)[8, 8], [200, 30, 30])
    assert "animated: used frame 0 of 3" in loaded.notes


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_other_formats_refused_by_content(tmp_path, fmt):
    path = tmp_path / "disguised.png"  # the suffix lies; the content decides
    astronaut().save(path, format=fmt)
    with pytest.raises(SdenhanceError, match=f"{fmt} images are not supported") as err:
        load_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_real_gif_refused():
    with pytest.raises(SdenhanceError, match="GIF"):
        load_image(DATA / "no_time_for_that_tiny.gif")


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_truncated_files_refused_with_one_line(tmp_path, suffix):
    full = tmp_path / f"full.{suffix}"
    Image.open(DATA / "astronaut.png").save(full)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SdenhanceError) as err:
        load_image(cut)
    message = str(err.value)
    assert "\n" not in message and str(cut) in message and "truncated" in message


def test_not_an_image_refused(tmp_path):
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(SdenhanceError, match="not an image"):
        load_image(path)


def test_missing_file_and_folder_refused(tmp_path):
    with pytest.raises(SdenhanceError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(SdenhanceError, match="folder"):
        load_image(tmp_path)


def test_pixel_cap_refuses_from_the_header_alone(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(20000, 20000))  # 1 pixel of data: decoding would fail differently
    start = time.perf_counter()
    with pytest.raises(SdenhanceError) as err:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert "20000x20000" in message and "400.0 MP" in message and "SDENHANCE_MAX_PIXELS" in message
    assert "truncated" not in message and "\n" not in message
    assert DEFAULT_MAX_PIXELS >= 90_000_000


def test_pixel_cap_from_env_and_argument(tmp_path, monkeypatch):
    astronaut().save(tmp_path / "a.png")
    monkeypatch.setenv("SDENHANCE_MAX_PIXELS", "1000")
    with pytest.raises(SdenhanceError, match="64x48"):
        load_image(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", max_pixels=None).size == (64, 48)
    assert load_image(tmp_path / "a.png", max_pixels=5000).size == (64, 48)
    monkeypatch.setenv("SDENHANCE_MAX_PIXELS", "lots")
    with pytest.raises(SdenhanceError, match="SDENHANCE_MAX_PIXELS='lots'"):
        load_image(tmp_path / "a.png")


def test_our_cap_decides_not_pillows(tmp_path, monkeypatch):
    """Pillow's fixed bomb limit (warning at 1x, error at 2x) must not override the cap, and its
    warning must not escape."""
    expected = astronaut()
    expected.save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3072 px: past Pillow's error limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert np.array_equal(px(load_image(tmp_path / "a.png").image), px(expected))
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # between warning and error
        assert load_image(tmp_path / "a.png").size == (64, 48)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(SdenhanceError, match="64x48"):
        load_image(tmp_path / "a.png", max_pixels=3000)
    assert Image.MAX_IMAGE_PIXELS == 2000  # the process-wide setting is left alone


# ---------------------------------------------------------------------------------- saving


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_alpha_round_trip(tmp_path, suffix):
    rgb = astronaut()
    alpha = Image.linear_gradient("L").resize(rgb.size)
    out = save_image(rgb, tmp_path / f"out{suffix}", alpha=alpha)
    loaded = load_image(out)
    assert np.array_equal(px(loaded.alpha), px(alpha))
    if suffix != ".webp":
        assert np.array_equal(px(loaded.image), px(rgb))


def test_rgba_image_saves_its_alpha(tmp_path):
    rgba = astronaut().convert("RGBA")
    rgba.putalpha(128)
    loaded = load_image(save_image(rgba, tmp_path / "o.png"))
    assert px(loaded.alpha).min() == px(loaded.alpha).max() == 128


def test_grey_image_saves(tmp_path):
    gray = astronaut().convert("L")
    for suffix in (".png", ".webp", ".jpg", ".tif"):
        loaded = load_image(save_image(gray, tmp_path / f"g{suffix}"))
        assert loaded.size == gray.size and loaded.image.mode == "RGB"


def test_jpeg_drops_alpha_with_a_warning(tmp_path, sdlog):
    rgba = astronaut().convert("RGBA")
    save_image(rgba, tmp_path / "o.jpg")
    assert load_image(tmp_path / "o.jpg").alpha is None
    assert any("JPEG has no transparency" in r.getMessage() for r in sdlog.records)


def test_save_creates_folders_with_normal_permissions(tmp_path):
    out = save_image(astronaut(), tmp_path / "a" / "b" / "out.png")
    assert out == tmp_path / "a" / "b" / "out.png" and out.is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in out.parent.iterdir()] == ["out.png"]


def test_save_refuses_unknown_suffix_and_bad_quality(tmp_path):
    with pytest.raises(SdenhanceError, match=r"'\.bmp'.*\.png"):
        save_image(astronaut(), tmp_path / "o.bmp")
    with pytest.raises(SdenhanceError, match="quality"):
        save_image(astronaut(), tmp_path / "o.jpg", quality=0)
    assert list(tmp_path.iterdir()) == []


def test_save_never_leaves_partial_files(tmp_path, monkeypatch):
    target = tmp_path / "out.png"

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half an image")
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        save_image(astronaut(), target)
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(SdenhanceError, match="cannot write .*No space left on device"):
        save_image(astronaut(), target)
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_interrupt_during_save_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(astronaut(), tmp_path / "out.webp")
    assert list(tmp_path.iterdir()) == []


def test_inputs_are_never_overwritten(tmp_path):
    source = tmp_path / "in" / "photo.png"
    source.parent.mkdir()
    astronaut().save(source)
    before = source.read_bytes()
    spellings = [source, tmp_path / "in" / ".." / "in" / "photo.png"]
    (tmp_path / "link.png").symlink_to(source)
    os.link(source, tmp_path / "hard.png")
    for out in [*spellings, tmp_path / "link.png", tmp_path / "hard.png"]:
        with pytest.raises(SdenhanceError, match="refusing to overwrite the input"):
            save_image(astronaut().rotate(90), out, protect=[source])
    assert source.read_bytes() == before
    assert save_image(astronaut(), tmp_path / "other.png", protect=[source]).is_file()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".avif", ".tif"])
def test_saved_image_carries_the_profile_its_pixels_are_in(tmp_path, suffix):
    profile = adobe_like_profile()
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(tmp_path / "in.png", icc_profile=profile)
    loaded = load_image(tmp_path / "in.png")
    assert (
        Image.open(save_image(loaded.image, tmp_path / f"o{suffix}")).info["icc_profile"] == profile
    )
    stripped = save_image(loaded.image, tmp_path / f"s{suffix}", strip_metadata=True)
    assert "icc_profile" not in Image.open(stripped).info


# ---------------------------------------------------------------------------------- metadata: ours


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp", ".tif"])
def test_metadata_round_trip(tmp_path, suffix):
    record = {**RECORD, "prompt": "an astronaut, 日本語 é\nsecond line"}
    out = save_image(astronaut(), tmp_path / f"out{suffix}", metadata=record)
    meta = read_metadata(out)
    assert meta.sdenhance == json.loads(json.dumps({"version": __version__, **record}))
    assert meta.prompt == "an astronaut, 日本語 é\nsecond line"
    assert meta.negative_prompt == "blurry, lowres, (plastic skin:1.2)"
    assert meta.parameters == infotext_fields(meta.sdenhance, size=(64, 48))
    assert meta.parameters["Seed"] == "123" and meta.parameters["Size"] == "64x48"
    assert load_image(out).metadata == meta


def test_png_stores_a1111_parameters_and_json_chunks(tmp_path):
    out = save_image(astronaut(), tmp_path / "o.png", metadata=RECORD)
    info = Image.open(out).info
    assert info["parameters"] == format_infotext({"version": __version__, **RECORD}, size=(64, 48))
    assert json.loads(info["sdenhance"])["version"] == __version__
    assert (
        info["parameters"]
        .splitlines()[-1]
        .startswith("Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 123")
    )


def test_jpeg_user_comment_is_a1111_unicode(tmp_path):
    out = save_image(astronaut(), tmp_path / "o.jpg", metadata=RECORD)
    exif = Image.open(out).getexif()
    comment = exif.get_ifd(0x8769)[0x9286]
    assert comment[:8] == b"UNICODE\x00"
    assert comment[8:].decode("utf-16-be") == read_metadata(out).raw_parameters
    assert json.loads(exif[0x010E])["sdenhance"]["seed"] == 123


def test_metadata_tolerates_odd_records(tmp_path):
    odd = {
        "seed": np.int64(7),
        "models": {"model": Path("/m/x.safetensors")},
        "extra": {1, 2},
        "steps": "nonsense",
    }
    meta = read_metadata(save_image(astronaut(), tmp_path / "o.png", metadata=odd))
    assert meta.sdenhance["seed"] == 7 and meta.sdenhance["models"]["model"] == "/m/x.safetensors"
    assert meta.parameters["Model"] == "x" and meta.prompt is None
    meta = read_metadata(save_image(astronaut(), tmp_path / "e.png", metadata={}))
    assert meta.parameters["Version"] == f"sdenhance {__version__}"
    assert read_metadata(save_image(astronaut(), tmp_path / "n.png")) == ImageMetadata()


# ---------------------------------------------------------------------------------- infotext


def test_infotext_layout_and_mapping():
    text = format_infotext({**RECORD, "version": "0.1.0"}, size=(256, 192))
    lines = text.split("\n")
    assert lines[0] == "a portrait of an astronaut, 35mm: sharp"
    assert lines[1] == "Negative prompt: blurry, lowres, (plastic skin:1.2)"
    assert lines[2] == (
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 123, Size: 256x192, "
        "Model hash: abcdef0123, Model: realisticVision_v60, Denoising strength: 0.35, "
        'ControlNet 0: "Model: lllyasviel/control_v11f1e_sd15_tile [a371b31b], Weight: 0.6", '
        "Hires upscale: 4, Hires upscaler: R-ESRGAN 4x+, Tile: 512, Color fix: wavelet, "
        "Stages: denoise > upscale > colorfix, Main step: 2 upscale, Original size: 64x48, "
        "Version: sdenhance 0.1.0"
    )


@pytest.mark.parametrize(
    "record",
    [
        RECORD,
        {"prompt": "line one,\n  line two: with colon  \nline three", "seed": 1},
        {
            "steps": [
                {
                    "stage": "img2img",
                    "options": {
                        "strength": 0.4,
                        "scheduler": "euler-a",
                        "style": 'a "b", c: d\nx',
                        "note": "{not json",
                    },
                }
            ]
        },
        {"negative_prompt": "only negative"},
        {},
    ],
)
def test_our_infotext_parses_back_to_what_we_wrote(record):
    text = format_infotext(record, size=(10, 20))
    assert parse_infotext(text) == infotext_fields(record, size=(10, 20))


A1111_CLASSIC = """girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate
Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing
Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"""

A1111_HIRES_LORA = """masterpiece, best quality, 1girl, solo, (detailed eyes:1.2),
standing in a field of flowers, <lora:add_detail:0.6>
BREAK sunset, rim light
Negative prompt: (worst quality, low quality:1.4), EasyNegative,
bad-hands-5
Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3046785913, Size: 512x768, Model hash: 7f96a1a9ca, Model: anything-v5-PrtRE, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, Hires steps: 15, Hires upscaler: R-ESRGAN 4x+ Anime6B, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "EasyNegative: c74b4e810b03, bad-hands-5: aa7651be154c", Version: v1.7.0"""

A1111_SDXL_NO_NEGATIVE = r"""photo of a "red" fox in the snow, 35mm
Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 42, Size: 1024x1024, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, VAE hash: 235745af8d, VAE: sdxl_vae.safetensors, ADetailer model: face_yolov8n.pt, ADetailer prompt: "detailed face, smile", ADetailer confidence: 0.3, ADetailer version: 23.11.1, Template: "photo of a \"red\" fox in the snow,\n35mm", Version: v1.9.4"""

A1111_IMG2IMG_CONTROLNET = """a castle on a hill, highly detailed
Negative prompt: blurry
Steps: 25, Sampler: DPM++ SDE Karras, CFG scale: 6, Seed: 1234, Size: 2048x2048, Model hash: e6bb9ea85b, Model: realisticVisionV51, Denoising strength: 0.3, ControlNet 0: "Module: tile_resample, Model: control_v11f1e_sd15_tile [a371b31b], Weight: 0.6, Resize Mode: Crop and Resize, Low Vram: False, Processor Res: 512, Guidance Start: 0, Guidance End: 1, Pixel Perfect: True, Control Mode: Balanced", Ultimate SD upscale upscaler: 4x-UltraSharp, Ultimate SD upscale tile_width: 512, Ultimate SD upscale tile_height: 512, Ultimate SD upscale mask_blur: 8, Ultimate SD upscale padding: 32, Hashes: {"vae": "c6a580b13a", "model": "e6bb9ea85b"}, Version: v1.6.0"""


def test_parse_classic_a1111():
    p = parse_infotext(A1111_CLASSIC)
    assert p["Prompt"].startswith("girl with an artist's beret") and p["Prompt"].endswith(
        "detailed, intricate"
    )
    assert p["Negative prompt"].startswith("ugly, fat") and "[blurry]" in p["Negative prompt"]
    assert {k: p[k] for k in ("Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash")} == {
        "Steps": "20",
        "Sampler": "Euler a",
        "CFG scale": "7",
        "Seed": "965400086",
        "Size": "512x512",
        "Model hash": "45dee52b",
    }
    assert len(p) == 8


def test_parse_multiline_prompts_and_quoted_hashes():
    p = parse_infotext(A1111_HIRES_LORA)
    assert p["Prompt"] == (
        "masterpiece, best quality, 1girl, solo, (detailed eyes:1.2),\n"
        "standing in a field of flowers, <lora:add_detail:0.6>\nBREAK sunset, rim light"
    )
    assert p["Negative prompt"] == "(worst quality, low quality:1.4), EasyNegative,\nbad-hands-5"
    assert p["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert p["TI hashes"] == "EasyNegative: c74b4e810b03, bad-hands-5: aa7651be154c"
    assert p["Hires upscaler"] == "R-ESRGAN 4x+ Anime6B" and p["Version"] == "v1.7.0"
    assert p["Denoising strength"] == "0.45" and p["Clip skip"] == "2"


def test_parse_missing_negative_and_escaped_template():
    p = parse_infotext(A1111_SDXL_NO_NEGATIVE)
    assert p["Prompt"] == 'photo of a "red" fox in the snow, 35mm'
    assert p["Negative prompt"] == ""
    assert p["Template"] == 'photo of a "red" fox in the snow,\n35mm'
    assert p["ADetailer prompt"] == "detailed face, smile"
    assert p["Schedule type"] == "Karras" and p["VAE"] == "sdxl_vae.safetensors"


def test_parse_controlnet_block_and_json_hashes():
    p = parse_infotext(A1111_IMG2IMG_CONTROLNET)
    assert p["ControlNet 0"].startswith(
        "Module: tile_resample, Model: control_v11f1e_sd15_tile [a371b31b], Weight: 0.6"
    )
    assert p["Ultimate SD upscale tile_width"] == "512"
    assert json.loads(p["Hashes"]) == {"vae": "c6a580b13a", "model": "e6bb9ea85b"}
    assert p["Version"] == "v1.6.0"


@pytest.mark.parametrize(
    ("text", "prompt", "params"),
    [
        (
            "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512",
            "",
            {"Steps": "20", "Seed": "1"},
        ),
        ("a cat\nsitting, on a mat", "a cat\nsitting, on a mat", {}),
        (
            "a cat, style: anime",
            "a cat, style: anime",
            {},
        ),  # too few pairs: A1111 reads it as prompt
        ("a dog\r\nSteps: 4, Seed: 9, Size: 64x64", "a dog", {"Size": "64x64"}),
        (
            "Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+",
            "",
            {"Postprocess upscale by": "4"},
        ),
    ],
)
def test_parse_edge_cases(text, prompt, params):
    p = parse_infotext(text)
    assert p["Prompt"] == prompt
    assert params.items() <= p.items()
    if not params:
        assert set(p) == {"Prompt", "Negative prompt"}


def _jpeg_with_user_comment(path: Path, comment: bytes) -> Path:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    astronaut().save(path, exif=exif)
    return path


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: b"UNICODE\x00" + t.encode("utf-16-be"),  # A1111 (piexif)
        lambda t: b"UNICODE\x00" + t.encode("utf-16-le"),  # some other writers
        lambda t: b"ASCII\x00\x00\x00" + t.encode("ascii"),
    ],
)
def test_a1111_jpeg_parameters_read(tmp_path, encode):
    path = _jpeg_with_user_comment(tmp_path / "a.jpg", encode(A1111_CLASSIC))
    meta = load_image(path).metadata
    assert meta.raw_parameters == A1111_CLASSIC
    assert meta.source == "a1111" and meta.prompt.startswith("girl with an artist's beret")
    assert meta.parameters["Seed"] == "965400086"


def test_a1111_png_parameters_read(tmp_path):
    info = PngInfo()
    info.add_text("parameters", A1111_HIRES_LORA)
    astronaut().save(tmp_path / "a.png", pnginfo=info)
    meta = read_metadata(tmp_path / "a.png")
    assert meta.negative_prompt == "(worst quality, low quality:1.4), EasyNegative,\nbad-hands-5"
    assert meta.parameters["Model"] == "anything-v5-PrtRE"


# ---------------------------------------------------------------------------------- ComfyUI, Midjourney

COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 20,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 512, "height": 512, "batch_size": 1},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {
            "text": "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,",
            "clip": ["4", 1],
        },
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
COMFY_WORKFLOW = {
    "last_node_id": 9,
    "last_link_id": 9,
    "nodes": [
        {
            "id": 6,
            "type": "CLIPTextEncode",
            "widgets_values": [
                "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"
            ],
        },
        {
            "id": 3,
            "type": "KSampler",
            "widgets_values": [156680208700286, "randomize", 20, 8, "euler", "normal", 1],
        },
    ],
    "links": [[1, 4, 0, 3, 0, "MODEL"]],
    "version": 0.4,
}


def test_comfyui_png(tmp_path):
    info = PngInfo()
    info.add_text("prompt", json.dumps(COMFY_PROMPT))
    info.add_text("workflow", json.dumps(COMFY_WORKFLOW))
    astronaut().save(tmp_path / "c.png", pnginfo=info)
    meta = load_image(tmp_path / "c.png").metadata
    assert meta.comfy_prompt == COMFY_PROMPT and meta.comfy_workflow == COMFY_WORKFLOW
    assert meta.source == "comfyui" and meta.parameters is None
    assert meta.prompt == "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"
    assert meta.negative_prompt == "text, watermark"


def test_comfyui_through_controlnet_and_string_nodes(tmp_path):
    graph = json.loads(json.dumps(COMFY_PROMPT))
    graph["10"] = {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {
            "positive": ["6", 0],
            "negative": ["7", 0],
            "control_net": ["11", 0],
            "image": ["12", 0],
            "strength": 0.6,
        },
    }
    graph["13"] = {"class_type": "PrimitiveString", "inputs": {"value": "a castle at dusk"}}
    graph["6"]["inputs"]["text"] = ["13", 0]
    graph["3"]["inputs"].update(positive=["10", 0], negative=["10", 1])
    graph["2"] = {
        "class_type": "CLIPTextEncodeSDXL",
        "inputs": {"text_g": "unused", "text_l": "unused"},
    }
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    astronaut().save(tmp_path / "c.png", pnginfo=info)
    meta = read_metadata(tmp_path / "c.png")
    assert meta.prompt == "a castle at dusk" and meta.negative_prompt == "text, watermark"


def test_comfyui_flux_guider_graph():
    graph = {
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "a cat wizard, oil painting", "clip": ["11", 0]},
        },
        "13": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["25", 0],
                "guider": ["22", 0],
                "sampler": ["16", 0],
                "sigmas": ["17", 0],
                "latent_image": ["27", 0],
            },
        },
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "22": {
            "class_type": "BasicGuider",
            "inputs": {"model": ["12", 0], "conditioning": ["26", 0]},
        },
        "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
    }
    meta = ImageMetadata(comfy_prompt=graph)
    assert meta.prompt == "a cat wizard, oil painting"
    assert meta.negative_prompt is None


def test_comfyui_webp_exif(tmp_path):
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(COMFY_PROMPT)
    exif[0x010F] = "workflow:" + json.dumps(COMFY_WORKFLOW)
    astronaut().save(tmp_path / "c.webp", exif=exif)
    meta = read_metadata(tmp_path / "c.webp")
    assert meta.comfy_prompt == COMFY_PROMPT and meta.comfy_workflow == COMFY_WORKFLOW
    assert meta.negative_prompt == "text, watermark"


def test_invalid_comfy_json_is_ignored(tmp_path):
    info = PngInfo()
    info.add_text("prompt", "{broken")
    astronaut().save(tmp_path / "c.png", pnginfo=info)
    assert read_metadata(tmp_path / "c.png") == ImageMetadata()


MJ_DESCRIPTION = "a red fox in fresh snow, cinematic lighting, 35mm --ar 3:2 --v 6.1 --stylize 250 --no people, text Job ID: 5b8a2c1e-3f4d-4e6a-9b7c-1d2e3f4a5b6c"


def test_midjourney_png(tmp_path):
    info = PngInfo()
    info.add_text("Author", "someone")
    info.add_text("Description", MJ_DESCRIPTION)
    astronaut().save(tmp_path / "mj.png", pnginfo=info)
    meta = read_metadata(tmp_path / "mj.png")
    assert meta.source == "midjourney"
    assert meta.prompt == "a red fox in fresh snow, cinematic lighting, 35mm"
    assert meta.negative_prompt == "people, text"
    assert meta.midjourney["params"] == {
        "ar": "3:2",
        "v": "6.1",
        "stylize": "250",
        "no": "people, text",
    }
    assert meta.midjourney["job_id"] == "5b8a2c1e-3f4d-4e6a-9b7c-1d2e3f4a5b6c"


def test_plain_description_is_not_midjourney():
    assert parse_midjourney("Holiday photo, Lisbon 2019") is None
    assert parse_midjourney("--tile seamless moss")["prompt"] == ""


def test_our_record_wins_over_input_metadata(tmp_path):
    info = PngInfo()
    info.add_text("parameters", A1111_CLASSIC)
    info.add_text(
        "sdenhance", json.dumps({"steps": [{"stage": "img2img", "options": {"prompt": "ours"}}]})
    )
    astronaut().save(tmp_path / "both.png", pnginfo=info)
    meta = read_metadata(tmp_path / "both.png")
    assert meta.prompt == "ours"
    assert meta.negative_prompt.startswith("ugly, fat")  # our record has none: A1111's is next


def test_read_metadata_of_a_pil_image(tmp_path):
    info = PngInfo()
    info.add_text("parameters", A1111_CLASSIC)
    astronaut().save(tmp_path / "a.png", pnginfo=info)
    assert read_metadata(Image.open(tmp_path / "a.png")).parameters["Steps"] == "20"
    assert read_metadata(astronaut()) == ImageMetadata()
