"""Hostile inputs through the real command line: one line, exit 2, nothing changed or left behind.

Every case runs in its own folder holding only the files it needs. Whatever happens, the
command must exit with the expected code, say why in one line on stderr (no traceback), leave
every file it was given byte-identical, write nothing on refusal and leave no `*.part` or
hidden temp file. Most cases run in-process (`CliRunner`); a few, and Ctrl-C / SIGTERM in the
middle of a batch, run as real `python -m sdenhance` processes to check the true exit code and
what a terminal would show. Nothing loads a model unless the case is about models (then the
tiny test models). `tools/hostile_table.py` runs the same cases and prints them as a table.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import skimage
from PIL import Image

ERROR = re.compile(r"^error: \S")
LOG_RECORD = re.compile(r"^(DEBUG|INFO|WARNING) ")  # lines of the `sdenhance` logger
MARKER = "PWNED"  # what the malicious pickle would create


# --------------------------------------------------------------------------------------------
# the files the cases are given


def astronaut(size: tuple[int, int] | None = None) -> Image.Image:
    photo = Image.fromarray(skimage.data.astronaut())
    return photo.resize(size) if size else photo.crop((100, 60, 164, 108))  # 64×48


def _png(path: Path) -> None:
    astronaut().save(path)


def _jpeg(path: Path) -> None:
    astronaut().save(path, quality=90)


def _huge_header(path: Path) -> None:
    """A real 64×48 PNG whose IHDR (CRC fixed) claims 30000×30000."""
    _png(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _truncated(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        make(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return build


def _rgb16(path: Path) -> None:
    import cv2

    rgb = np.asarray(astronaut(), np.uint16) * 257
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    assert path.read_bytes()[24] == 16  # IHDR bit depth: 16 bits per sample


def _mask_larger(path: Path) -> None:
    mask = Image.new("L", (128, 96), 0)
    mask.paste(255, (40, 40, 80, 70))
    mask.save(path)


def _mask_empty(path: Path) -> None:
    Image.new("L", (64, 48), 0).save(path)


def _torch_dict(path: Path) -> None:
    import torch

    torch.save({"w": torch.zeros(2, 2), "step": 3}, path)


class _Touch:
    """Unpickling this calls `Path.touch(marker)`: code execution, if the loader allowed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_pickle(path: Path) -> None:
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2), "x": _Touch(path.parent / MARKER)}}, path)
    assert not (path.parent / MARKER).exists()
    assert pickle.dumps(_Touch(path.parent / MARKER))  # the payload really is in there


def _truncated_safetensors(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(64, 64)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _text(content: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(content, encoding="utf-8")


MAKERS: dict[str, Callable[[Path], None]] = {
    "a.png": _png,
    "a.jpg": _jpeg,
    "huge.png": _huge_header,
    "truncated.png": _truncated(_png),
    "truncated.jpg": _truncated(_jpeg),
    "a.gif": lambda p: astronaut().save(p),
    "a.bmp": lambda p: astronaut().save(p),
    "text.png": _text("just some text, not an image\n"),
    "rgb16.png": _rgb16,
    "mask-larger.png": _mask_larger,
    "mask-empty.png": _mask_empty,
    "x.ckpt": _torch_dict,
    "evil.ckpt": _malicious_pickle,
    "truncated.safetensors": _truncated_safetensors,
    "big.png": lambda p: astronaut((700, 700)).save(p),
    "syntax.toml": _text('name = "syntax"\n[[steps]\nstage = "upscale"\n'),
    "unknown-stage.toml": _text('[[steps]]\nstage = "sharpen"\n'),
    "typo.toml": _text('[[steps]]\nstage = "upscale"\noptions = { creativty = 0 }\n'),
    "missing-var.toml": _text(
        '[[steps]]\nstage = "upscale"\noptions = { creativity = "$amount", upscaler = "lanczos" }\n'
    ),
}


# --------------------------------------------------------------------------------------------
# the cases

OFFLINE = ("--creativity", "0", "--upscaler", "lanczos")  # upscale without any model
TINY = ("--creativity", "0.3", "--upscaler", "lanczos", "--steps", "2", "--device", "cpu")


@dataclass(frozen=True)
class Case:
    """One command line. `args` may name tiny models as {sd15}, {sd15_controlnet}, {sdxl_controlnet}."""

    id: str
    args: tuple[str, ...]
    files: tuple[str, ...]
    error: str = ""  # regex the one error line must match (exit 2)
    exit: int = 2
    outputs: tuple[str, ...] = ()  # files a successful run writes
    env: dict[str, str] = field(default_factory=dict)
    logs: bool = False  # the run may log (INFO ...) before its error line
    models: bool = False

    def argv(self, models: dict[str, str] | None = None) -> list[str]:
        names = {k.replace("-", "_"): v for k, v in (models or {}).items()}
        return [a.format(**names) if "{" in a else a for a in self.args]


def _refused(id: str, *args: str, files: tuple[str, ...] = ("a.png",), error: str, **kw) -> Case:
    return Case(id, tuple(args), files, error=error, **kw)


CASES: list[Case] = [
    _refused(
        "png claims 30000x30000",
        "colorfix",
        "huge.png",
        "-r",
        "a.png",
        files=("huge.png", "a.png"),
        error=r"huge\.png: 30000x30000 \(900\.0 MP\) is larger than the limit",
    ),
    _refused(
        "SDENHANCE_MAX_PIXELS=1000",
        "colorfix",
        "a.png",
        "-r",
        "a.png",
        "-o",
        "out.png",
        env={"SDENHANCE_MAX_PIXELS": "1000"},
        error=r"64x48 \(3,072 pixels\) is larger than the limit of 1,000 pixels",
    ),
    _refused(
        "truncated PNG",
        "colorfix",
        "truncated.png",
        "-r",
        "a.png",
        files=("truncated.png", "a.png"),
        error=r"cannot read truncated\.png: PNG data is truncated",
    ),
    _refused(
        "truncated JPEG",
        "colorfix",
        "truncated.jpg",
        "-r",
        "a.png",
        files=("truncated.jpg", "a.png"),
        error=r"cannot read truncated\.jpg",
    ),
    _refused(
        "GIF",
        "colorfix",
        "a.gif",
        "-r",
        "a.png",
        files=("a.gif", "a.png"),
        error=r"a\.gif: GIF images are not supported",
    ),
    _refused(
        "BMP",
        "colorfix",
        "a.bmp",
        "-r",
        "a.png",
        files=("a.bmp", "a.png"),
        error=r"a\.bmp: BMP images are not supported",
    ),
    _refused(
        "text file named .png",
        "colorfix",
        "text.png",
        "-r",
        "a.png",
        files=("text.png", "a.png"),
        error=r"cannot read text\.png: not an image in a supported format",
    ),
    Case(
        "16-bit PNG",
        ("colorfix", "rgb16.png", "-r", "a.png", "-o", "fixed.png"),
        ("rgb16.png", "a.png"),
        exit=0,
        outputs=("fixed.png",),
    ),
    _refused(
        "mask larger than image",
        "remove",
        "a.png",
        "--mask",
        "mask-larger.png",
        "--no-refine",
        files=("a.png", "mask-larger.png"),
        error=r"mask size 128×96 does not match the image size 64×48",
    ),
    Case(
        "mask larger, --mask-resize",
        (
            "remove",
            "a.png",
            "--mask",
            "mask-larger.png",
            "--no-refine",
            "--mask-resize",
            "-o",
            "removed.png",
        ),
        ("a.png", "mask-larger.png"),
        exit=0,
        outputs=("removed.png",),
    ),
    _refused(
        "empty mask",
        "remove",
        "a.png",
        "--mask",
        "mask-empty.png",
        "--no-refine",
        files=("a.png", "mask-empty.png"),
        error=r"mask selects nothing",
    ),
    _refused(
        "--model x.ckpt (pickle)",
        "upscale",
        "a.png",
        *TINY,
        "--model",
        "x.ckpt",
        files=("a.png", "x.ckpt"),
        error=r"x\.ckpt is a pickle checkpoint, which can run code when loaded; refused",
    ),
    _refused(
        "--model x.ckpt --allow-pickle (not SD)",
        "upscale",
        "a.png",
        *TINY,
        "--model",
        "x.ckpt",
        "--allow-pickle",
        files=("a.png", "x.ckpt"),
        logs=True,
        error=r"x\.ckpt is unrecognised weights \(w, \.\.\.\); a Stable Diffusion 1\.5 or SDXL checkpoint is needed",
    ),
    _refused(
        "malicious pickle --allow-pickle",
        "upscale",
        "a.png",
        *TINY,
        "--model",
        "evil.ckpt",
        "--allow-pickle",
        files=("a.png", "evil.ckpt"),
        error=r"refusing to unpickle evil\.ckpt: it holds more than plain weights \(Unsupported global",
    ),
    _refused(
        "truncated .safetensors",
        "upscale",
        "a.png",
        *TINY,
        "--model",
        "truncated.safetensors",
        files=("a.png", "truncated.safetensors"),
        error=r"checkpoint truncated\.safetensors is corrupt or truncated: tensor 'a' ends at byte",
    ),
    _refused(
        "ControlNet folder as --model",
        "upscale",
        "a.png",
        *TINY,
        "--model",
        "{sd15_controlnet}",
        models=True,
        error=r"sd15-controlnet is a controlnet, but a pipeline was expected",
    ),
    _refused(
        "SDXL ControlNet, SD1.5 model",
        "upscale",
        "a.png",
        *TINY,
        "--model",
        "{sd15}",
        "--controlnet",
        "{sdxl_controlnet}",
        models=True,
        logs=True,
        error=r"ControlNet \S+sdxl-controlnet is for SDXL but the model \S+sd15 is SD15",
    ),
    _refused(
        "recipe: TOML syntax error",
        "run",
        "syntax.toml",
        "a.png",
        files=("syntax.toml", "a.png"),
        error=r"syntax\.toml: not valid TOML \(Expected ']]'",
    ),
    _refused(
        "recipe: unknown stage",
        "run",
        "unknown-stage.toml",
        "a.png",
        files=("unknown-stage.toml", "a.png"),
        error=r"step 1: unknown stage `sharpen`; stages are: ",
    ),
    _refused(
        "recipe: typo'd key",
        "run",
        "typo.toml",
        "a.png",
        files=("typo.toml", "a.png"),
        error=r"step 1 \(upscale\): unknown option `creativty`; did you mean `creativity`\?",
    ),
    _refused(
        "recipe: missing $variable",
        "run",
        "missing-var.toml",
        "a.png",
        files=("missing-var.toml", "a.png"),
        error=r"missing variable `amount`; give --set amount=VALUE",
    ),
    _refused(
        "--creativity 1.5",
        "upscale",
        "a.png",
        "--creativity",
        "1.5",
        error=r"`creativity` must be ≥ 0\.0 and ≤ 1\.0; got 1\.5",
    ),
    _refused(
        "--steps 0", "upscale", "a.png", "--steps", "0", error=r"`steps` must be ≥ 1 .*; got 0"
    ),
    _refused(
        "--tile 100",
        "upscale",
        "a.png",
        "--tile",
        "100",
        error=r"`tile` must be .*multiple of 8; got 100",
    ),
    _refused(
        "--overlap 512 --tile 512",
        "upscale",
        "a.png",
        "--overlap",
        "512",
        "--tile",
        "512",
        error=r"`overlap` must be smaller than `tile` \(512\); got 512",
    ),
    _refused(
        "--scale 0", "upscale", "a.png", "--scale", "0", error=r"`scale` must be ≥ 1\.0 .*; got 0"
    ),
    _refused(
        "--seed -1",
        "upscale",
        "a.png",
        "--seed",
        "-1",
        error=r"`--seed` must be in \[0, 2\^32\); got -1",
    ),
    _refused(
        "--scale 32 on 700x700",
        "upscale",
        "big.png",
        "--scale",
        "32",
        *OFFLINE,
        files=("big.png",),
        error=r"output 22400×22400 is over the limit of \d+ MP",
    ),
    _refused(
        "--scheduler nope",
        "upscale",
        "a.png",
        "--scheduler",
        "nope",
        error=r"`scheduler` must be one of .*; got 'nope'",
    ),
    _refused(
        "--upscaler nope",
        "upscale",
        "a.png",
        "--upscaler",
        "nope",
        error=r"unknown upscaler `nope`",
    ),
    _refused(
        "--color-fix nope",
        "upscale",
        "a.png",
        "--color-fix",
        "nope",
        error=r"`color_fix` must be one of .*; got 'nope'",
    ),
    _refused(
        "-o input --overwrite (colorfix)",
        "colorfix",
        "a.png",
        "-r",
        "a.png",
        "-o",
        "a.png",
        "--overwrite",
        error=r"output a\.png is an input file; inputs are never overwritten",
    ),
    _refused(
        "-o input --overwrite (upscale)",
        "upscale",
        "a.png",
        *OFFLINE,
        "-o",
        "a.png",
        "--overwrite",
        error=r"output a\.png is an input file; inputs are never overwritten",
    ),
]
SUBPROCESS_CASES = (
    "png claims 30000x30000",
    "malicious pickle --allow-pickle",
    "recipe: typo'd key",
    "SDXL ControlNet, SD1.5 model",  # in a real process, library warnings reach stderr too
)


# --------------------------------------------------------------------------------------------
# the checks


def make_files(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Write the case's files; returns name -> sha256 of everything in the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        MAKERS[name](folder / name)
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    """Partial or hidden temp files (what an interrupted atomic write would leave)."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.startswith(".") or p.name.endswith((".part", ".tmp")) or "~" in p.name
    )


def problems(case: Case, code: int, stderr: str, before: dict[str, str], folder: Path) -> list[str]:
    """Everything wrong with a finished run (empty: the case passed)."""
    found = []
    if code != case.exit:
        found.append(f"exit {code}, expected {case.exit}")
    if "Traceback" in stderr:
        found.append("a traceback on stderr")
    lines = [line for line in stderr.splitlines() if line.strip()]
    said = lines
    if case.logs and all(LOG_RECORD.match(line) or line[0] == " " for line in lines[:-1]):
        said = lines[-1:]  # log records (wrapped to the terminal's width) may come first
    if case.exit == 2:
        if len(said) != 1 or not ERROR.match(said[0]):
            found.append(f"stderr is not one error line: {lines!r}")
        elif not re.search(case.error, said[0]):
            found.append(f"error {said[0]!r} does not match {case.error!r}")
    elif said:
        found.append(f"unexpected stderr: {lines!r}")
    after = snapshot(folder)
    changed = [name for name, digest in before.items() if after.get(name) != digest]
    if changed:
        found.append(f"inputs changed or removed: {changed}")
    new = sorted(set(after) - set(before) - set(case.outputs))
    if new:
        found.append(f"files written: {new}")
    missing = [name for name in case.outputs if name not in after]
    if missing:
        found.append(f"outputs missing: {missing}")
    if leftovers(folder):
        found.append(f"temp files left: {leftovers(folder)}")
    if (folder / MARKER).exists():
        found.append("the pickle's code ran")
    return found


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **(extra or {})}


def run_subprocess(
    case: Case, folder: Path, models: dict[str, str] | None = None
) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "sdenhance", *case.argv(models)],
        cwd=folder,
        env=subprocess_env(case.env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stderr


# --------------------------------------------------------------------------------------------
# tests


def _case_models(case: Case, request) -> dict[str, str] | None:
    return request.getfixturevalue("models") if case.models else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case, tmp_path, monkeypatch, request):
    from typer.testing import CliRunner

    from sdenhance.cli import app

    models = _case_models(case, request)
    folder = tmp_path / "case"
    before = make_files(folder, case.files)
    monkeypatch.chdir(folder)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, case.argv(models))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert problems(case, result.exit_code, result.stderr, before, folder) == []
    if case.outputs:
        from sdenhance.io.load import load_image

        for name in case.outputs:
            assert load_image(folder / name).size == (64, 48)


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_hostile_input_in_a_real_process(case_id, tmp_path, request):
    case = next(c for c in CASES if c.id == case_id)
    folder = tmp_path / "case"
    before = make_files(folder, case.files)
    code, stderr = run_subprocess(case, folder, _case_models(case, request))
    assert problems(case, code, stderr, before, folder) == []
    if not case.logs:
        assert stderr.count("\n") == 1  # the line ends: exactly one line, however long


def test_every_case_file_is_what_it_claims(tmp_path):
    """The hostile files are built right (so a refusal is for the stated reason)."""
    make_files(tmp_path, tuple(MAKERS))
    assert struct.unpack(">II", (tmp_path / "huge.png").read_bytes()[16:24]) == (30000, 30000)
    assert (
        Image.open(tmp_path / "a.gif").format == "GIF"
        and Image.open(tmp_path / "a.bmp").format == "BMP"
    )
    assert Image.open(tmp_path / "mask-larger.png").size == (128, 96)
    assert (tmp_path / "evil.ckpt").read_bytes()[:2] == b"PK"  # torch's zip pickle
    import pickletools
    import zipfile

    with zipfile.ZipFile(tmp_path / "evil.ckpt") as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        payload = zf.read(name)
    ops = " ".join(str(arg) for _, arg, _ in pickletools.genops(payload))
    assert "touch" in ops and MARKER in ops


# --------------------------------------------------------------------------------------------
# interrupts


def batch_folder(folder: Path, n: int = 6) -> dict[str, str]:
    """n 1024×1024 inputs (about 0.5 s of colorfix each) and a reference."""
    (folder / "in").mkdir(parents=True)
    photo = astronaut((1024, 1024))
    for i in range(n):
        photo.rotate(7 * i).save(folder / "in" / f"img{i}.png", compress_level=1)
    astronaut().save(folder / "ref.png")
    return snapshot(folder)


BATCH = ("colorfix", "in", "-r", "ref.png", "-o", "out/")


def interrupt_batch(folder: Path, signum: int, timeout: float = 60.0) -> tuple[int, str, list[str]]:
    """Run the batch, send `signum` when its first output is printed; (exit, stderr, printed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdenhance", *BATCH],
        cwd=folder,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        assert ready, "no output within the time limit"
        first = proc.stdout.readline()
        proc.send_signal(signum)
        rest, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stderr, [line for line in (first + rest).splitlines() if line]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_batch_exits_130_and_leaves_no_partial_file(signum, tmp_path):
    from sdenhance.io.load import load_image

    before = batch_folder(tmp_path)
    start = time.monotonic()
    code, stderr, printed = interrupt_batch(tmp_path, signum)
    assert code == 130, stderr
    assert time.monotonic() - start < 30
    assert "Traceback" not in stderr and "interrupted" in stderr
    written = sorted((tmp_path / "out").glob("*"))
    assert 1 <= len(written) < 6  # stopped after the first, before the last
    assert set(printed) <= {str(p.relative_to(tmp_path)) for p in written}
    for path in written:  # every file there is complete
        assert load_image(path).size == (1024, 1024)
    assert leftovers(tmp_path) == []
    after = snapshot(tmp_path)
    assert {k: after[k] for k in before} == before
