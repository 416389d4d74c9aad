"""`run --from OUT` re-runs inpaint and remove outputs with the mask they were made with."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.errors import SdenhanceError
from sdenhance.io import mask_record as mr
from sdenhance.io.load import read_metadata


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture
def files(tmp_path, photo):
    photo.save(tmp_path / "photo.png")
    mask = np.zeros((photo.height, photo.width), np.uint8)
    mask[30:50, 40:60] = 255
    Image.fromarray(mask, "L").save(tmp_path / "hole.png")
    return tmp_path


def inpaint(tmp, model: str, *extra: str):
    result = cli(
        "inpaint", str(tmp / "photo.png"), "--mask", str(tmp / "hole.png"), "--model", model,
        "--steps", "2", "--prompt", "a red ball", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp / "photo_inpaint.png"


def test_inpaint_output_records_its_mask_and_reruns_bit_identically(models, files) -> None:
    out = inpaint(files, models["sd15"])
    entry = read_metadata(out).sdenhance["mask"]
    assert entry["name"] == "hole.png" and len(entry["sha256"]) == 16
    stored = Image.open(io.BytesIO(base64.b64decode(entry["png"]))).convert("L")
    assert np.array_equal(np.asarray(stored), pixels(files / "hole.png"))
    shown = cli("info", str(out))
    assert "hole.png" in shown.stdout and "(stored, see --json)" in shown.stdout
    assert entry["png"] not in shown.stdout
    (files / "hole.png").unlink()  # the stored copy is enough
    result = cli("run", "--from", str(out))
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(files / "photo_rerun.png"), pixels(out))


@pytest.mark.parametrize("refine", [False, True])
def test_remove_output_reruns_bit_identically(models, files, refine) -> None:
    extra = ["--refine", "--model", models["sd15"], "--steps", "2"] if refine else ["--no-refine"]
    result = cli("remove", str(files / "photo.png"), "--mask", str(files / "hole.png"), *extra)
    assert result.exit_code == 0, result.output
    out = files / "photo_remove.png"
    assert not np.array_equal(pixels(out), pixels(files / "photo.png"))
    result = cli("run", "--from", str(out))
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(files / "photo_rerun.png"), pixels(out))


def test_a_mask_beside_the_output_must_match_its_hash(files, monkeypatch) -> None:
    monkeypatch.setattr(mr, "MAX_EMBED", 0)  # nothing stored: the mask is looked for by name
    made = cli("remove", str(files / "photo.png"), "--mask", str(files / "hole.png"), "--no-refine")
    assert made.exit_code == 0, made.output
    out = files / "photo_remove.png"
    assert "png" not in read_metadata(out).sdenhance["mask"]

    assert cli("run", "--from", str(out)).exit_code == 0  # same mask beside it: used
    assert np.array_equal(pixels(files / "photo_rerun.png"), pixels(out))

    edited = pixels(files / "hole.png").copy()
    edited[0:10, 0:10] = 255
    Image.fromarray(edited, "L").save(files / "hole.png")
    refused = cli("run", "--from", str(out), "--overwrite")
    assert refused.exit_code == 2 and "hash" in refused.stderr and "--mask" in refused.stderr

    given = cli("run", "--from", str(out), "--mask", str(files / "hole.png"), "--overwrite")
    assert given.exit_code == 0, given.output
    changed = pixels(files / "photo_rerun.png") != pixels(out)
    assert changed[0:10, 0:10].any() and not changed[60:, 80:].any()

    (files / "hole.png").unlink()
    missing = cli("run", "--from", str(out), "--overwrite")
    assert missing.exit_code == 2 and "--mask MASK" in missing.stderr


def test_an_alpha_mask_is_taken_again_from_the_input(tmp_path, photo) -> None:
    rgba = photo.convert("RGBA")
    alpha = np.full((photo.height, photo.width), 255, np.uint8)
    alpha[20:40, 20:50] = 0
    rgba.putalpha(Image.fromarray(alpha, "L"))
    rgba.save(tmp_path / "cut.png")
    made = cli("remove", str(tmp_path / "cut.png"), "--mask", "alpha", "--no-refine")
    assert made.exit_code == 0, made.output
    out = tmp_path / "cut_remove.png"
    result = cli("run", "--from", str(out))
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(tmp_path / "cut_rerun.png"), pixels(out))


def test_mask_flag_needs_a_masked_output(files) -> None:
    assert cli("run", "upscale-2x", str(files / "photo.png"), "--mask", "x.png").exit_code == 2


def test_stored_masks_are_checked() -> None:
    mask = Image.fromarray(np.eye(16, dtype=np.uint8) * 255, "L")
    entry = mr.mask_record(mask, "m.png")
    assert np.array_equal(np.asarray(mr.stored_mask(entry)), np.asarray(mask))
    assert mr.stored_mask({"name": "m.png", "sha256": entry["sha256"]}) is None
    for bad in (
        {**entry, "sha256": "0" * 16},  # another mask's hash
        {**entry, "png": "not base64!"},
        {**entry, "png": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"x" * 40).decode()},
        {**entry, "png": "A" * (mr.MAX_EMBED * 2)},
    ):
        with pytest.raises(SdenhanceError):
            mr.stored_mask(bad)
    wide = Image.fromarray(np.zeros((4, 4), np.float32), "F")  # PNG cannot hold it
    assert "png" not in mr.mask_record(wide, "f.tif")
    assert json.dumps(mr.mask_record(mask, "m.png"))  # the record stays JSON
