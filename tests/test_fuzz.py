"""Mutated files never escape as anything but `SdenhanceError`, and never hang.

Real small images (a 64×48 crop of scikit-image's astronaut as PNG, JPEG, WebP and TIFF, plain
and with a run record), the bundled recipe and preset TOML files and small safetensors files are
damaged by seeded bit flips, truncations and duplicated or removed byte ranges (PNG also by
whole chunks), then given to the loaders. Loading successfully is fine; any other exception,
or a call taking 5 s or more, is a bug.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage
from bounded import time_limit  # the shared harness of the hostile-input tests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.load import load_image, read_metadata
from sdenhance.io.save import save_image
from sdenhance.models.checkpoint import check_safetensors, inspect_checkpoint
from sdenhance.presets import load_preset
from sdenhance.recipes import load_recipe

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 5.0
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same mutations on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --------------------------------------------------------------------------------------------
# the harness: only SdenhanceError, within the time limit


def only_user_errors(call, *args):
    """Run `call(*args)`: success or SdenhanceError (one line) pass, anything else fails."""
    with time_limit(LIMIT_S), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF; not what is tested
        try:
            call(*args)
        except SdenhanceError as exc:
            assert str(exc).strip(), "an empty error message"
            assert "\n" not in str(exc), f"a multi-line error message: {exc!s}"


# --------------------------------------------------------------------------------------------
# mutations


def _pos(data: bytes, at: int) -> int:
    return at % max(len(data), 1)


def flip(data: bytes, at: int, bit: int) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    out[_pos(data, at)] ^= 1 << bit
    return bytes(out)


def truncate(data: bytes, at: int) -> bytes:
    return data[: _pos(data, at)]


def duplicate(data: bytes, at: int, length: int) -> bytes:
    i = _pos(data, at)
    return data[: i + length] + data[i : i + length] + data[i + length :]


def remove(data: bytes, at: int, length: int) -> bytes:
    i = _pos(data, at)
    return data[:i] + data[i + length :]


def png_chunks(data: bytes) -> list[bytes]:
    """The signature, then every chunk (length, type, data, CRC) as raw bytes."""
    chunks, i = [data[:8]], 8
    while i + 12 <= len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        chunks.append(data[i : i + 12 + n])
        i += 12 + n
    if i < len(data):
        chunks.append(data[i:])
    return chunks


def png_chunk_op(data: bytes, at: int, kind: str) -> bytes:
    """Duplicate, drop or swap one whole PNG chunk (CRCs stay valid: only the order changes)."""
    chunks = png_chunks(data)
    if len(chunks) < 3:
        return data
    i = 1 + at % (len(chunks) - 1)
    if kind == "dup":
        chunks.insert(i, chunks[i])
    elif kind == "drop":
        del chunks[i]
    else:
        j = 1 + (at // 7) % (len(chunks) - 1)
        chunks[i], chunks[j] = chunks[j], chunks[i]
    return b"".join(chunks)


AT = st.integers(0, 2**20)
LENGTH = st.integers(1, 64)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), AT, st.integers(0, 7)),
    st.tuples(st.just("truncate"), AT),
    st.tuples(st.just("duplicate"), AT, LENGTH),
    st.tuples(st.just("remove"), AT, LENGTH),
)
PNG_MUTATION = st.one_of(
    MUTATION, st.tuples(st.just("chunk"), AT, st.sampled_from(["dup", "drop", "swap"]))
)
_OPS = {
    "flip": flip,
    "truncate": truncate,
    "duplicate": duplicate,
    "remove": remove,
    "chunk": png_chunk_op,
}


def apply(data: bytes, mutations) -> bytes:
    for name, *args in mutations:
        data = _OPS[name](data, *args)
    return data


# --------------------------------------------------------------------------------------------
# seed files


def astronaut() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut()).crop((100, 60, 164, 108))  # 64×48


@functools.cache
def images() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, suffix) of small valid images in every loadable format.

    Built once, outside any fixture, so a failing example prints only its mutations.
    """
    with tempfile.TemporaryDirectory() as tmp:
        return _make_images(Path(tmp))


def _make_images(folder: Path) -> dict[str, tuple[bytes, str]]:
    photo = astronaut()
    out: dict[str, tuple[bytes, str]] = {}
    for fmt, suffix, kw in (
        ("PNG", ".png", {}),
        ("JPEG", ".jpg", {"quality": 90}),
        ("WEBP", ".webp", {"quality": 80}),
        ("TIFF", ".tif", {}),
        ("TIFF", ".tif", {"compression": "tiff_deflate"}),
    ):
        buf = io.BytesIO()
        photo.save(buf, fmt, **kw)
        out[f"{fmt.lower()}{'-deflate' if kw.get('compression') else ''}"] = (
            buf.getvalue(),
            suffix,
        )
    record = {"prompt": "an astronaut, detailed", "seed": 7, "steps": [{"stage": "upscale"}]}
    for suffix in (".png", ".jpg", ".webp", ".tif"):
        path = save_image(photo.convert("RGBA"), folder / f"record{suffix}", metadata=record)
        out[f"record{suffix}"] = (path.read_bytes(), suffix)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(photo.convert("L"), np.uint16) * 257).save(buf, "PNG")
    out["png16-grey"] = (buf.getvalue(), ".png")
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.asarray(photo, np.uint16) * 257)
    out["tiff16-rgb"] = (buf.getvalue(), ".tif")
    return out


def test_seed_images_are_valid(tmp_path):
    assert len(images()) >= 11
    for name, (data, suffix) in images().items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        assert load_image(path).size == (64, 48), name
    assert read_metadata(tmp_path / "record.png.png").prompt.startswith("an astronaut")


# --------------------------------------------------------------------------------------------
# images


def _check_image(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(data)
    only_user_errors(load_image, path)
    only_user_errors(read_metadata, path)


@pytest.mark.parametrize("name", ["png", "record.png", "png16-grey"])
@FUZZ
@given(mutations=st.lists(PNG_MUTATION, min_size=1, max_size=4))
def test_mutated_png(tmp_path, name, mutations):
    data, suffix = images()[name]
    _check_image(tmp_path, apply(data, mutations), suffix)


@pytest.mark.parametrize("name", ["jpeg", "record.jpg", "webp", "record.webp"])
@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
@example(mutations=[("duplicate", 0, 16)])  # VP8X canvas read from "RIFF....": 4.5e6 × 5e6 px
def test_mutated_jpeg_and_webp(tmp_path, name, mutations):
    data, suffix = images()[name]
    _check_image(tmp_path, apply(data, mutations), suffix)


@pytest.mark.parametrize("name", ["tiff", "tiff-deflate", "record.tif", "tiff16-rgb"])
@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
@example(mutations=[("flip", 134, 3)])  # BitsPerSample 8 -> 0 of the first sample
def test_mutated_tiff(tmp_path, name, mutations):
    data, suffix = images()[name]
    _check_image(tmp_path, apply(data, mutations), suffix)


def test_tiff_with_undecodable_bit_depth_is_a_user_error(tmp_path):
    """tifffile returns an empty (0,) array for BitsPerSample it cannot decode (0, 40000, 8/8/16)."""
    data, _ = images()["tiff"]
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    entries = {
        struct.unpack("<H", data[e : e + 2])[0]: e for e in range(ifd + 2, ifd + 2 + 12 * count, 12)
    }
    (bits_at,) = struct.unpack("<I", data[entries[258] + 8 : entries[258] + 12])
    for bits in ((0, 0, 0), (40000, 40000, 40000), (8, 8, 16)):
        broken = bytearray(data)
        broken[bits_at : bits_at + 6] = struct.pack("<3H", *bits)
        path = tmp_path / "bits.tif"
        path.write_bytes(bytes(broken))
        for call in (load_image, read_metadata):
            with pytest.raises(SdenhanceError, match="cannot read .*bits.tif"):
                call(path)


def _patched_ihdr(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    astronaut().save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@FUZZ
@given(width=st.integers(0, 2**31 - 1), height=st.integers(0, 2**31 - 1))
@example(width=30000, height=30000)
@example(width=0, height=48)
def test_png_header_size_lies(tmp_path, width, height):
    """A valid CRC on a lying IHDR: refused by size or by the short data, never decoded huge."""
    _check_image(tmp_path, _patched_ihdr(width, height), ".png")


# --------------------------------------------------------------------------------------------
# recipes and presets

TOML_FILES = sorted((ROOT / "pipelines").glob("*.toml")) + sorted((ROOT / "prompts").glob("*.toml"))
TOKENS = [
    '"x"',
    "0",
    "-1",
    "1e309",
    "nan",
    "true",
    "[]",
    "{}",
    "$",
    '"$nope"',
    "=",
    "[[steps]]",
    "[vars]",
    "\\",
    '"""',
    "'",
    "\x00",
    "é",
]


def text_mutation():
    line_op = st.tuples(st.sampled_from(["dup-line", "drop-line", "swap-lines"]), AT, AT)
    token_op = st.tuples(st.just("token"), AT, st.sampled_from(TOKENS))
    return st.one_of(MUTATION, line_op, token_op)


def apply_text(data: bytes, mutations) -> bytes:
    for name, *args in mutations:
        if name in _OPS:
            data = _OPS[name](data, *args)
            continue
        lines = data.splitlines(keepends=True) or [b""]
        i = args[0] % len(lines)
        if name == "token":  # replace a value (what follows `=`), else prefix the line
            token = args[1].encode()
            key, eq, _ = lines[i].partition(b"=")
            lines[i] = key + b"= " + token + b"\n" if eq else token + lines[i]
        else:
            j = args[1] % len(lines)
            if name == "dup-line":
                lines.insert(i, lines[j])
            elif name == "drop-line":
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
        data = b"".join(lines)
    return data


def load_and_validate(path: Path) -> None:
    if path.parent.name == "pipelines":
        load_recipe(path).validate()
    else:
        load_preset(path)


def test_bundled_toml_files_are_valid():
    assert len(TOML_FILES) >= 10
    for path in TOML_FILES:
        load_and_validate(path)


@pytest.mark.parametrize("source", TOML_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
@settings(FUZZ, max_examples=25)
@given(mutations=st.lists(text_mutation(), min_size=1, max_size=3))
def test_mutated_toml(tmp_path, source, mutations):
    folder = tmp_path / source.parent.name  # same file name: a preset's name must match it
    folder.mkdir(exist_ok=True)
    path = folder / source.name
    path.write_bytes(apply_text(source.read_bytes(), mutations))
    only_user_errors(load_and_validate, path)


# --------------------------------------------------------------------------------------------
# safetensors


@functools.cache
def safetensors_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        return _make_safetensors(Path(tmp))


def _make_safetensors(folder: Path) -> dict[str, bytes]:
    import torch
    from safetensors.torch import save_file

    states = {
        "one": ({"a": torch.zeros(4, 4)}, None),
        "mixed": (
            {
                "a": torch.zeros(4, 4),
                "model.diffusion_model.input_blocks.0.0.weight": torch.ones(
                    8, 4, 3, 3, dtype=torch.float16
                ),
                "b": torch.arange(6, dtype=torch.int64).reshape(2, 3),
                "c": torch.zeros(0, 3, dtype=torch.bfloat16),
            },
            {"format": "pt", "ss_network_module": "networks.lora"},
        ),
    }
    out = {}
    for name, (state, metadata) in states.items():
        path = folder / f"{name}.safetensors"
        save_file(state, str(path), metadata=metadata)
        check_safetensors(path)
        out[name] = path.read_bytes()
    return out


def _check_safetensors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzzed.safetensors"
    path.write_bytes(data)
    only_user_errors(check_safetensors, path)
    only_user_errors(inspect_checkpoint, path)


@pytest.mark.parametrize("name", ["one", "mixed"])
@FUZZ
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_safetensors(tmp_path, name, mutations):
    _check_safetensors(tmp_path, apply(safetensors_files()[name], mutations))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    field=st.sampled_from(["dtype", "shape", "data_offsets", None, "__metadata__"]),
    value=JSON,
    pad=st.integers(0, 80),
)
@example(field="dtype", value=[], pad=0)  # an unhashable dtype
@example(field="dtype", value={"F32": 1}, pad=0)
@example(field="__metadata__", value={"k": [1, {"x": None}]}, pad=3)
def test_safetensors_header_with_wrong_json(tmp_path, field, value, pad):
    """A well-framed header whose fields hold the wrong JSON types or values."""
    data = safetensors_files()["one"]
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    if field is None:
        header["a"] = value
    elif field == "__metadata__":
        header["__metadata__"] = value
    else:
        header["a"][field] = value
    raw = json.dumps(header).encode() + b" " * pad
    _check_safetensors(tmp_path, struct.pack("<Q", len(raw)) + raw + data[8 + n :])


@FUZZ
@given(length=st.integers(0, 2**64 - 1), tail=st.binary(max_size=64))
@example(length=2**63, tail=b"{}")
@example(length=0x80, tail=b"\x02{}")
def test_safetensors_length_prefix_lies(tmp_path, length, tail):
    _check_safetensors(tmp_path, struct.pack("<Q", length) + tail)
