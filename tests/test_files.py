"""Files in, files out: colour profiles, camera EXIF and XMP kept; AVIF/HEIC in; 16-bit kept."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image, ImageCms, features
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.io.load import load_image, read_metadata

ROCKET = (
    Path(skimage.__file__).parent / "data" / "rocket.jpg"
)  # a real JPEG with an embedded Adobe RGB (1998) profile
FORMATS = ["png", "jpg", "webp", "avif", "tif"]
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'tiff:Orientation="6" exif:PixelXDimension="64" exif:PixelYDimension="48">'
    b"<dc:creator>someone</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
)
runner = CliRunner()


def rocket_icc() -> bytes:
    return Image.open(ROCKET).info["icc_profile"]


def camera_exif() -> Image.Exif:
    """What a camera writes: make, model, dates, a sideways orientation, pixel dimensions."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R5"
    exif[0x0112] = 6  # rotate 90° clockwise to view
    exif[0x0132] = "2024:05:01 12:00:00"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:05:01 12:00:00"
    sub[0xA002] = 64
    sub[0xA003] = 48
    return exif


@pytest.fixture
def camera_jpeg(tmp_path):
    """A 64x48 crop of rocket.jpg, stored sideways, with its profile, camera EXIF and XMP."""
    crop = Image.open(ROCKET).convert("RGB").crop((200, 100, 264, 148))
    path = tmp_path / "cam.jpg"
    crop.save(path, quality=95, icc_profile=rocket_icc(), exif=camera_exif(), xmp=XMP)
    return path


def upscale_args(src, out, fmt, *extra):
    return ["upscale", str(src), "--creativity", "0", "--upscaler", "lanczos", "--scale", "2",
            "--format", fmt, "-o", str(out), *extra]  # fmt: skip


def assert_carried(path, size):
    """The output keeps the input's profile bytes, camera tags and XMP, fitted to `size`."""
    im = Image.open(path)
    assert im.size == size
    assert im.info["icc_profile"] == rocket_icc()
    exif = im.getexif()
    assert (exif[0x010F], exif[0x0110], exif[0x0132]) == ("Canon", "EOS R5", "2024:05:01 12:00:00")
    assert exif[0x0112] == 1  # the loader turned the pixels upright
    sub = exif.get_ifd(0x8769)
    assert sub[0x9003] == "2024:05:01 12:00:00"
    assert (sub[0xA002], sub[0xA003]) == size
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    xmp = xmp.encode() if isinstance(xmp, str) else xmp
    assert b'tiff:Orientation="1"' in xmp and b"<dc:creator>someone</dc:creator>" in xmp
    assert f'exif:PixelXDimension="{size[0]}"'.encode() in xmp


@pytest.mark.parametrize("fmt", FORMATS)
def test_upscale_output_keeps_profile_camera_exif_and_xmp(camera_jpeg, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(app, upscale_args(camera_jpeg, out, fmt))
    assert result.exit_code == 0, result.output
    assert_carried(out, (96, 128))  # 48x64 upright, twice
    # the pixels are the input's, turned upright, not converted to sRGB
    upright = Image.open(camera_jpeg).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    got = np.asarray(Image.open(out).convert("RGB").resize((48, 64), Image.Resampling.BOX), float)
    assert np.abs(got - np.asarray(upright, float)).mean() < 6
    assert read_metadata(out).sdenhance["input"]["name"] == "cam.jpg"


@pytest.mark.parametrize("fmt", FORMATS)
def test_recipe_output_keeps_profile_camera_exif_and_xmp(camera_jpeg, tmp_path, user_home, fmt):
    (user_home / "pipelines").mkdir(parents=True)
    (user_home / "pipelines" / "grow-fix.toml").write_text(
        '[[steps]]\nstage = "resize"\noptions = { scale = 2 }\n'
        '[[steps]]\nstage = "colorfix"\noptions = { method = "adain" }\n'
    )
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(
        app, ["run", "grow-fix", str(camera_jpeg), "--format", fmt, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert_carried(out, (96, 128))
    assert [s["stage"] for s in read_metadata(out).sdenhance["steps"]] == ["resize", "colorfix"]


@pytest.mark.parametrize("fmt", ["jpg", "webp", "avif"])
def test_exif_formats_hold_the_a1111_parameters_beside_the_camera_data(camera_jpeg, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    assert runner.invoke(app, upscale_args(camera_jpeg, out, fmt)).exit_code == 0
    exif = Image.open(out).getexif()
    comment = exif.get_ifd(0x8769)[0x9286]
    assert comment[:8] == b"UNICODE\x00"  # as A1111 writes it: charset header, UTF-16 BE
    text = comment[8:].decode("utf-16-be")
    assert "Postprocess upscale by: 2" in text and "Size: 96x128" in text
    assert json.loads(exif[0x010E])["sdenhance"]["size_out"] == [96, 128]
    assert exif[0x010F] == "Canon"


@pytest.mark.parametrize("fmt", FORMATS)
def test_strip_metadata_leaves_nothing(camera_jpeg, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(app, upscale_args(camera_jpeg, out, fmt, "--strip-metadata"))
    assert result.exit_code == 0, result.output
    im = Image.open(out)
    assert "icc_profile" not in im.info and "xmp" not in im.info
    texts = {k for k, v in im.info.items() if isinstance(v, str)} - {"compression"}
    assert not texts  # no text chunks (a TIFF's compression name is not metadata)
    exif = im.getexif()
    if fmt == "tif":  # a TIFF's own layout tags are not metadata
        assert not {0x010F, 0x0110, 0x010E, 0x0131, 0x8769, 700} & set(exif)
    else:
        assert len(exif) == 0
    assert read_metadata(out).sdenhance is None and read_metadata(out).parameters is None
    # the Adobe RGB pixels were converted, so the colours still look the same without a profile
    kept = runner.invoke(app, upscale_args(camera_jpeg, tmp_path / f"k.{fmt}", fmt, "--to-srgb"))
    assert kept.exit_code == 0, kept.output
    srgb = np.asarray(Image.open(tmp_path / f"k.{fmt}").convert("RGB"), float)
    assert np.abs(np.asarray(im.convert("RGB"), float) - srgb).max() <= 1


def test_to_srgb_converts_with_the_profile_and_marks_exif_srgb(camera_jpeg, tmp_path):
    kept, converted = tmp_path / "kept.png", tmp_path / "srgb.png"
    assert runner.invoke(app, upscale_args(camera_jpeg, kept, "png")).exit_code == 0
    assert (
        runner.invoke(app, upscale_args(camera_jpeg, converted, "png", "--to-srgb")).exit_code == 0
    )
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(rocket_icc()))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    expected = ImageCms.profileToProfile(Image.open(kept).convert("RGB"), adobe, srgb)
    got = Image.open(converted)
    assert "icc_profile" not in got.info
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(expected))
    assert got.getexif()[0x010F] == "Canon"  # only the colours changed


# ---------------------------------------------------------------------------------- formats in


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_input_loads_with_its_profile_and_exif(tmp_path):
    crop = Image.open(ROCKET).convert("RGB").crop((0, 0, 64, 48))
    crop.save(tmp_path / "in.avif", quality=95, icc_profile=rocket_icc(), exif=camera_exif())
    loaded = load_image(tmp_path / "in.avif")
    assert loaded.format == "AVIF" and loaded.size == (48, 64)  # orientation 6 applied
    assert loaded.icc == rocket_icc()
    exif = Image.Exif()
    exif.load(loaded.exif)
    assert exif[0x0110] == "EOS R5" and exif[0x0112] == 1
    got = np.asarray(loaded.image, float)
    want = np.asarray(crop.transpose(Image.Transpose.ROTATE_270), float)
    assert np.abs(got - want).mean() < 4


def test_heic_input_loads(tmp_path):
    import pillow_heif  # the `heic` extra, installed by `make test`

    crop = Image.open(ROCKET).convert("RGB").crop((0, 0, 64, 48))
    heif = pillow_heif.from_pillow(crop)
    heif.save(
        tmp_path / "phone.heic", quality=95, exif=camera_exif().tobytes(), icc_profile=rocket_icc()
    )
    assert (tmp_path / "phone.heic").read_bytes()[4:12] == b"ftypheic"
    loaded = load_image(tmp_path / "phone.heic")
    assert loaded.format == "HEIF" and loaded.icc == rocket_icc()
    exif = Image.Exif()
    exif.load(loaded.exif)
    assert exif[0x010F] == "Canon"
    # HEIF stores rotation as a transform libheif applies: the pixels arrive upright either way
    want = np.asarray(crop, float)
    if loaded.size != crop.size:
        want = np.asarray(crop.transpose(Image.Transpose.ROTATE_270), float)
    assert np.abs(np.asarray(loaded.image, float) - want).mean() < 4
    result = runner.invoke(app, upscale_args(tmp_path / "phone.heic", tmp_path / "o.png", "png"))
    assert result.exit_code == 0, result.output


def test_heic_without_the_extra_names_it(tmp_path, monkeypatch):
    import pillow_heif  # the `heic` extra, installed by `make test`

    heif = pillow_heif.from_pillow(Image.new("RGB", (16, 16), "red"))
    heif.save(tmp_path / "phone.heic")
    monkeypatch.setattr("sdenhance.io.formats.heif_registered", lambda: False)
    result = runner.invoke(app, ["info", str(tmp_path / "phone.heic")])
    assert result.exit_code == 2
    assert "pip install 'sdenhance[heic]'" in result.output


# ---------------------------------------------------------------------------------- 16 bits


def deep_png(path, size=(40, 30)):
    """A 16-bit RGB PNG whose values use every one of 65536 levels' precision."""
    import cv2

    w, h = size
    ramp = np.linspace(0, 65535, w * h * 3).reshape(h, w, 3)
    data = np.rint(ramp).astype(np.uint16)
    cv2.imwrite(str(path), data[:, :, ::-1])
    return data


def read16(path) -> np.ndarray:
    import cv2
    import tifffile

    if str(path).endswith(".tif"):
        return tifffile.imread(path)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, ::-1]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_pure_colour_stages_keep_16_bits(tmp_path, suffix):
    data = deep_png(tmp_path / "in.png")
    out = tmp_path / f"out{suffix}"
    # blending an image over itself changes nothing: 16-bit in, the same 16-bit values out
    args = ["blend", str(tmp_path / "in.png"), "--original", str(tmp_path / "in.png")]
    result = runner.invoke(app, [*args, "--opacity", "0.5", "-o", str(out)])
    assert result.exit_code == 0, result.output
    got = read16(out)
    assert got.dtype == np.uint16 and np.array_equal(got, data)
    assert read_metadata(out).sdenhance["bits"] == 16


def test_colorfix_on_16_bits_keeps_the_fine_levels(tmp_path):
    deep_png(tmp_path / "in.png")
    Image.open(ROCKET).convert("RGB").resize((16, 12)).save(tmp_path / "ref.png")
    out = tmp_path / "out.png"
    args = ["colorfix", str(tmp_path / "in.png"), "-r", str(tmp_path / "ref.png")]
    assert runner.invoke(app, [*args, "--method", "adain", "-o", str(out)]).exit_code == 0
    got = read16(out)
    assert got.dtype == np.uint16
    assert len(np.unique(got[:, :, 0])) > 256  # more levels than 8 bits can hold
    eight = runner.invoke(app, [*args, "--method", "adain", "-o", str(tmp_path / "o.jpg")])
    assert eight.exit_code == 0  # an 8-bit format gets 8 bits
    assert Image.open(tmp_path / "o.jpg").mode == "RGB"


def test_recipe_resize_on_16_bits_matches_a_float_lanczos(tmp_path, user_home):
    data = deep_png(tmp_path / "in.png", size=(20, 16))
    (user_home / "pipelines").mkdir(parents=True)
    (user_home / "pipelines" / "grow.toml").write_text(
        '[[steps]]\nstage = "resize"\noptions = { scale = 2 }\n'
    )
    out = tmp_path / "out.png"
    assert (
        runner.invoke(app, ["run", "grow", str(tmp_path / "in.png"), "-o", str(out)]).exit_code == 0
    )
    channels = [
        np.asarray(
            Image.fromarray(data[:, :, c].astype(np.float32) / 65535, "F").resize(
                (40, 32), Image.Resampling.LANCZOS
            )
        )
        for c in range(3)
    ]
    expected = np.rint(np.clip(np.dstack(channels), 0, 1) * 65535)
    assert np.abs(read16(out).astype(float) - expected).max() <= 1


def test_info_shows_what_an_output_carries(camera_jpeg, tmp_path):
    out = tmp_path / "out.webp"
    assert runner.invoke(app, upscale_args(camera_jpeg, out, "webp")).exit_code == 0
    result = runner.invoke(app, ["info", "--json", str(out)])
    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["icc_profile"] == "Adobe RGB (1998)"
    assert described["camera"] == "Canon EOS R5" and described["taken"] == "2024:05:01 12:00:00"
    assert described["xmp"] is True and described["parameters"]["Size"] == "96x128"
