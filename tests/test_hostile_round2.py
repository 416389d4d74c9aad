"""Hostile inputs, second round, through the real command line: the same checks as
`test_hostile.py` (one line, exit 2, nothing changed or left behind) for metadata, re-run
records, numbers, output paths, model files, non-file inputs, config files and terminal text.
`tools/hostile_table.py` prints these cases after the first round's (`MAKERS` here builds
this round's files).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import test_hostile as h
from PIL.PngImagePlugin import PngInfo
from test_hostile import Case, astronaut

RECORD = {
    "version": "0.1.0",
    "steps": [{"stage": "colorfix", "options": {"method": "lab"}}],
    "seed": 3,
    "input": {"name": "a.png"},
}


def _png_text(**texts: str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        info = PngInfo()
        for key, value in texts.items():
            info.add_text(key, value, zip=True)
        astronaut().save(path, pnginfo=info)

    return build


def _record(**change) -> Callable[[Path], None]:
    return _png_text(sdenhance=json.dumps({**RECORD, **change}))


def _jpeg_bomb(path: Path) -> None:
    h._jpeg(path)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 9000, 9000)
    path.write_bytes(bytes(data))


def _corrupt_exif(path: Path) -> None:
    ifd = struct.pack("<H", 5) + struct.pack("<HHI4s", 0x010E, 2, 4, b"abc\0")
    astronaut().save(path, exif=b"Exif\0\0II*\0" + struct.pack("<I", 8) + ifd)


def _deep_header(path: Path) -> None:
    header = b'{"__metadata__":' + b"[" * 100_000
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def _truncated_model(path: Path) -> None:
    path.mkdir()
    index = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
    }
    (path / "model_index.json").write_text(json.dumps(index)[:40])


MAKERS: dict[str, Callable[[Path], None]] = {
    "spaces.png": _png_text(parameters="a" + " " * 1_000_000 + "b"),
    "deep.png": _png_text(sdenhance="[" * 100_000, prompt='{"a":' * 5000),
    "escapes.png": _png_text(parameters="x \x1b]0;owned\x07 \u202eevil\nSteps: 2, Seed: 1"),
    "unclosed-xmp.png": _png_text(Description="Job ID:" * 100_000),
    "traverse.png": _record(input={"name": "../x/photo.png"}),
    "absolute.png": _record(input={"name": "/etc/passwd"}),
    "options-list.png": _record(steps=[{"stage": "colorfix", "options": [["method", "lab"]]}]),
    "seed-2^40.png": _record(seed=2**40),
    "unknown-key.png": _record(run="rm -rf /"),
    "record-30000.png": _record(
        steps=[{"stage": "resize", "options": {"width": 30000, "height": 30000}}]
    ),
    "resize.toml": h._text('[[steps]]\nstage = "resize"\noptions = { scale = 2 }\n'),
    "p[b]q.png": h._png,
    "bomb.jpg": _jpeg_bomb,
    "exif.jpg": _corrupt_exif,
    "fifo.png": lambda p: os.mkfifo(p),
    "device.png": lambda p: p.symlink_to("/dev/zero"),
    "deep.safetensors": _deep_header,
    "trunc-model": _truncated_model,
    "evil.pth": h._malicious_pickle,
    "int.toml": h._text("model = 3\n"),
    "latin1.toml": lambda p: p.write_bytes(b'model = "caf\xe9"\n'),
}

OFFLINE = h.OFFLINE
_refused = h._refused

CASES: list[Case] = [
    # 1. metadata is hostile text: bounded, a note, never fatal
    Case("1 MB of spaces in parameters", ("info", "spaces.png"), ("spaces.png",), exit=0),
    Case("JSON chunks 100,000 deep", ("info", "deep.png"), ("deep.png",), exit=0),
    Case("100,000 unclosed 'Job ID:'", ("info", "unclosed-xmp.png"), ("unclosed-xmp.png",), exit=0),
    Case("ESC/OSC/bidi in a prompt", ("info", "escapes.png"), ("escapes.png",), exit=0),
    # 2. a re-run record is untrusted input
    _refused(
        "record: input ../x/photo.png",
        "run",
        "--from",
        "traverse.png",
        files=("traverse.png",),
        error=r"`input\.name`: the input must be a bare file name",
    ),
    _refused(
        "record: input /etc/passwd",
        "run",
        "--from",
        "absolute.png",
        files=("absolute.png",),
        error=r"`input\.name`: the input must be a bare file name",
    ),
    _refused(
        "record: options a list",
        "run",
        "--from",
        "options-list.png",
        files=("options-list.png",),
        error=r"`steps\.1\.options`: Input should be a valid dictionary",
    ),
    _refused(
        "record: seed 2^40",
        "run",
        "--from",
        "seed-2^40.png",
        files=("seed-2^40.png",),
        error=r"`seed`: Input should be less than 4294967296",
    ),
    _refused(
        "record: unknown key",
        "run",
        "--from",
        "unknown-key.png",
        files=("unknown-key.png",),
        error=r"unknown key `run`",
    ),
    _refused(
        "record: resize to 30000x30000",
        "run",
        "--from",
        "record-30000.png",
        files=("record-30000.png",),
        error=r"output 30000×30000 is over the limit of 400 MP",
    ),
    # 3. every number bounded
    _refused(
        "--set scale=<5000 digits>",
        "run",
        "resize.toml",
        "a.png",
        "--set",
        "scale=" + "1" * 5000,
        files=("resize.toml", "a.png"),
        error=r"`scale` must be a number; got '1111",
    ),
    _refused(
        "--set scale=1e308",
        "run",
        "resize.toml",
        "a.png",
        "--set",
        "scale=1e308",
        files=("resize.toml", "a.png"),
        error=r"`scale` must be > 0\.0 and ≤ 64\.0; got 1e\+308",
    ),
    _refused(
        "--set scale=10^20",
        "run",
        "resize.toml",
        "a.png",
        "--set",
        "scale=10^20",
        files=("resize.toml", "a.png"),
        error=r"`scale` must be a number; got '10\^20'",
    ),
    _refused(
        "--set width=10^400",
        "run",
        "resize.toml",
        "a.png",
        "--set",
        f"width={10**400}",
        files=("resize.toml", "a.png"),
        error=r"`width` must be ≥ 1 and ≤ 65535; got a 401-digit number",
    ),
    _refused(
        "--set resize.width=60000",
        "run",
        "resize.toml",
        "a.png",
        "--set",
        "resize.width=60000",
        files=("resize.toml", "a.png"),
        error=r"step 1 \(resize\): output 60000×45000 is over the limit of 400 MP",
    ),
    # 4. output paths
    _refused(
        "-o '{stem:>9000000000}'",
        "colorfix",
        "a.png",
        "-r",
        "a.png",
        "-o",
        "out/{{stem:>9000000000}}.png",
        error=r"`\{stem:>9000000000\}` is not a plain field",
    ),
    _refused(
        "-o name of 305 bytes",
        "colorfix",
        "a.png",
        "-r",
        "a.png",
        "-o",
        "out/{{stem}}" + "x" * 300 + ".png",
        error=r"the name axxx\S* is 305 bytes; the file system allows 255",
    ),
    _refused(
        "-o under a file",
        "colorfix",
        "a.png",
        "-r",
        "a.png",
        "-o",
        "a.png/x.png",
        error=r"cannot (create folder|write) a\.png",
    ),
    # 5. model files and folders
    _refused(
        "safetensors header 100,000 deep",
        "upscale",
        "a.png",
        *h.TINY,
        "--model",
        "deep.safetensors",
        files=("a.png", "deep.safetensors"),
        error=r"deep\.safetensors is corrupt or truncated: header is nested more than 64 levels deep",
    ),
    _refused(
        "truncated model_index.json",
        "upscale",
        "a.png",
        *h.TINY,
        "--model",
        "trunc-model",
        files=("a.png", "trunc-model"),
        error=r"trunc-model/model_index\.json is not valid JSON",
    ),
    _refused(
        "--upscaler x.pth",
        "upscale",
        "a.png",
        *OFFLINE[:2],
        "--upscaler",
        "evil.pth",
        files=("a.png", "evil.pth"),
        error=r"evil\.pth` is a pickle, which can run code when loaded; refused",
    ),
    _refused(
        "--upscaler x.pth --allow-pickle",
        "upscale",
        "a.png",
        *OFFLINE[:2],
        "--upscaler",
        "evil.pth",
        "--allow-pickle",
        files=("a.png", "evil.pth"),
        error=r"needs spandrel|refusing to unpickle evil\.pth",
    ),
    # 6. inputs that are not files
    _refused(
        "FIFO named in.png",
        "info",
        "fifo.png",
        files=("fifo.png",),
        error=r"fifo\.png is a FIFO \(named pipe\), not an image; refused",
    ),
    _refused(
        "device named in.png",
        "info",
        "device.png",
        files=("device.png",),
        error=r"device\.png is a character device, not an image; refused",
    ),
    _refused(
        "1 KB JPEG claiming 81 MP",
        "info",
        "bomb.jpg",
        files=("bomb.jpg",),
        error=r"corrupt JPEG header: 9000x9000 needs at least 237,445 bytes of data but the file has",
    ),
    # 7. config files
    _refused(
        "config.toml: model = 3",
        "upscale",
        "a.png",
        *OFFLINE,
        env={"SDENHANCE_CONFIG": "int.toml"},
        files=("a.png", "int.toml"),
        error=r"config file int\.toml: `model` must be text",
    ),
    _refused(
        "config.toml in Latin-1",
        "upscale",
        "a.png",
        *OFFLINE,
        env={"SDENHANCE_CONFIG": "latin1.toml"},
        files=("a.png", "latin1.toml"),
        error=r"config file latin1\.toml: not UTF-8 text \(byte 12 is 0xe9\)",
    ),
    # 8. one line means one line
    Case(
        "file name p[b]q.png",
        ("colorfix", "p[b]q.png", "-r", "p[b]q.png"),
        ("p[b]q.png",),
        exit=0,
        outputs=("p[b]q_colorfix.png",),
    ),
    _refused(
        "missing x[/]y.png",
        "colorfix",
        "x[/]y.png",
        "-r",
        "a.png",
        error=r"^error: no files match x\[/\]y\.png$",
    ),
    Case("Corrupt EXIF (Pillow warns)", ("info", "exif.jpg"), ("exif.jpg",), exit=0),
]
SUBPROCESS_CASES = (
    "Corrupt EXIF (Pillow warns)",
    "FIFO named in.png",
    "ESC/OSC/bidi in a prompt",
    "--upscaler x.pth --allow-pickle",
)


@pytest.fixture(autouse=True)
def _round2_world(monkeypatch):
    """This round's files next to the first round's, and the `sdenhance` logger as a fresh
    process has it (no handler left by earlier in-process commands)."""
    import logging

    monkeypatch.setattr(h, "MAKERS", {**h.MAKERS, **MAKERS})
    logger = logging.getLogger("sdenhance")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "level", logging.NOTSET)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_round2(case, tmp_path, monkeypatch, request):
    h.test_hostile_input(case, tmp_path, monkeypatch, request)


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_hostile_input_round2_in_a_real_process(case_id, tmp_path, request):
    case = next(c for c in CASES if c.id == case_id)
    folder = tmp_path / "case"
    before = h.make_files(folder, case.files)
    code, stderr = h.run_subprocess(case, folder, h._case_models(case, request))
    assert h.problems(case, code, stderr, before, folder) == []
