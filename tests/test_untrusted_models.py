"""Model files and folders that are damaged or not what they claim: one line naming the file.

Configs and safetensors headers of a diffusers folder are checked before diffusers reads
them; a checkpoint that lacks tensors is named as incomplete instead of failing deep in
torch; and `--allow-pickle` reaches every loader that takes a path, the upscaler included.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import skimage
from bounded import bounded
from PIL import Image
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.errors import SdenhanceError
from sdenhance.models.checkpoint import check_safetensors
from sdenhance.models.pickles import unpickle_weights_only
from sdenhance.models.resolve import resolve


def _header_file(path: Path, header: bytes) -> Path:
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


@pytest.mark.parametrize(
    "header, reason",
    [
        (b'{"__metadata__":' + b"[" * 100_000, "header is nested more than 64 levels deep"),
        (b'{"a":' * 70 + b"{}" + b"}" * 70, "header is nested more than 64 levels deep"),
        (b'{"a": ' + b"9" * 5000 + b"}", "header is not valid JSON"),
        (b'{"a": "\xff"}', "header is not UTF-8 (invalid start byte at byte 7)"),
    ],
    ids=["unclosed deep", "closed deep", "5000 digits", "not utf-8"],
)
def test_a_hostile_safetensors_header_is_one_line(tmp_path, header, reason):
    path = _header_file(tmp_path / "m.safetensors", header)
    error = bounded(check_safetensors, path)
    assert str(error).startswith(f"checkpoint {path} is corrupt or truncated: {reason}")


@pytest.fixture(scope="module")
def sd15(tmp_path_factory) -> Path:
    """A tiny SD 1.5 diffusers folder, copied and damaged by each test."""
    from sdenhance import testing

    return testing.save_folder(tmp_path_factory.mktemp("tiny") / "sd15", "sd15")


@pytest.fixture(scope="module")
def controlnet(tmp_path_factory) -> Path:
    from sdenhance import testing

    return testing.save_controlnet(tmp_path_factory.mktemp("tiny") / "cn", "sd15")


def _damaged(sd15: Path, tmp_path: Path, damage) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(sd15, folder)
    damage(folder)
    return folder


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _folder_instead(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _fifo_instead(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _json(value) -> callable:
    return lambda path: path.write_text(json.dumps(value))


FOLDERS = {
    "truncated model_index.json": (
        "model_index.json",
        _truncate,
        "model_index.json is not valid JSON",
    ),
    "model_index.json a list": (
        "model_index.json",
        _json([1, 2]),
        "holds a JSON list, not an object",
    ),
    "_class_name a number": (
        "model_index.json",
        _json({"_class_name": 5, "unet": ["diffusers", "UNet2DConditionModel"]}),
        "model_index.json: `_class_name` should be text; got int",
    ),
    "model_index.json a folder": (
        "model_index.json",
        _folder_instead,
        "model_index.json is a folder, not a JSON file",
    ),
    "unet config a folder": (
        "unet/config.json",
        _folder_instead,
        "unet/config.json is a folder, not a JSON file",
    ),
    "unet config a FIFO": (
        "unet/config.json",
        _fifo_instead,
        "unet/config.json is a FIFO (named pipe), not a JSON file",
    ),
    "scheduler config deep": (
        "scheduler/scheduler_config.json",
        lambda p: p.write_text("[" * 10_000),
        "nested more than 64 levels",
    ),
    "vae config binary": (
        "vae/config.json",
        lambda p: p.write_bytes(b"\x89PNG\xff\xfe"),
        "vae/config.json is not a text file",
    ),
    "truncated unet weights": (
        "unet/diffusion_pytorch_model.safetensors",
        _truncate,
        "unet/diffusion_pytorch_model.safetensors is corrupt or truncated",
    ),
    "unet weights a pickle": (
        "unet/diffusion_pytorch_model.safetensors",
        lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 64),
        "diffusion_pytorch_model.safetensors is a pickle (.ckpt/.pt), not safetensors",
    ),
}


@pytest.mark.parametrize("name, damage, message", FOLDERS.values(), ids=FOLDERS.keys())
def test_a_damaged_model_folder_is_one_line_naming_the_file(sd15, tmp_path, name, damage, message):
    folder = _damaged(sd15, tmp_path, lambda f: damage(f / name))
    error = bounded(resolve, str(folder), megabytes=None)
    assert isinstance(error, SdenhanceError)
    assert message in str(error) and str(folder) in str(error)


def test_an_intact_folder_still_resolves(sd15):
    resolved = resolve(str(sd15))
    assert (resolved.kind, resolved.family, resolved.role) == ("folder", "sd15", "pipeline")


def test_a_checkpoint_missing_a_tensor_is_named_incomplete(sd15, controlnet, tmp_path):
    from safetensors.torch import load_file, save_file

    from sdenhance import testing

    full = testing.save_single_file(tmp_path / "full.safetensors", "sd15")
    tensors = load_file(str(full))
    del tensors[next(k for k in sorted(tensors) if k.startswith("model.diffusion_model.input"))]
    save_file(tensors, str(tmp_path / "missing.safetensors"))
    Image.fromarray(skimage.data.astronaut()).crop((0, 0, 64, 64)).save(tmp_path / "a.png")
    args = ["upscale", str(tmp_path / "a.png"), "--creativity", "0.3", "--steps", "2"]
    args += [
        "--upscaler",
        "lanczos",
        "--device",
        "cpu",
        "--model",
        str(tmp_path / "missing.safetensors"),
    ]
    args += ["--model-config", str(sd15), "--controlnet", str(controlnet)]
    args += ["-o", str(tmp_path / "out.png")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line == (
        f"error: {tmp_path / 'missing.safetensors'} lacks weight tensors the model needs; the "
        "checkpoint is incomplete (download it again, or use the full checkpoint)"
    )


# --------------------------------------------------------------------------------------------
# --allow-pickle reaches the upscaler


class _Touch:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _evil_pickle(path: Path) -> Path:
    import torch

    torch.save({"w": torch.zeros(2), "x": _Touch(path.parent / "PWNED")}, path)
    return path


def test_allow_pickle_reaches_the_upscaler(tmp_path):
    model = _evil_pickle(tmp_path / "4x.pth")
    Image.fromarray(skimage.data.astronaut()).crop((0, 0, 64, 48)).save(tmp_path / "a.png")
    base = ["upscale", str(tmp_path / "a.png"), "--creativity", "0", "--upscaler", str(model)]
    refused = CliRunner().invoke(app, base)
    assert refused.exit_code == 2
    assert "is a pickle, which can run code when loaded; refused" in refused.stderr
    allowed = CliRunner().invoke(app, [*base, "--allow-pickle"])
    assert allowed.exit_code == 2
    # the flag arrived: what stops it now is the missing optional loader, or the unpickler
    assert "is a pickle" not in allowed.stderr
    assert "needs spandrel" in allowed.stderr or "refusing to unpickle" in allowed.stderr
    assert not (tmp_path / "PWNED").exists()


def test_the_upscaler_unpickler_is_weights_only(tmp_path):
    model = _evil_pickle(tmp_path / "4x.pth")
    error = bounded(unpickle_weights_only, model, megabytes=None)
    assert str(error).startswith(f"refusing to unpickle {model}: it holds more than plain weights")
    assert not (tmp_path / "PWNED").exists()
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x04" + b"\xff" * 100)
    assert "is corrupt or truncated: not a valid pickle (Unsupported operand 255)" in str(
        bounded(unpickle_weights_only, garbage, megabytes=None)
    )
