"""Masks for batches: a mask folder paired by stem, one mask file for all, unmasked inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from sdenhance.cli import app
from sdenhance.ops.mask_pairs import pair_masks, unmasked_line
from sdenhance.ops.masks import grow


def test_pairs_by_stem_exact_name_first() -> None:
    inputs = [Path("in/a.png"), Path("in/b.jpg"), Path("in/c.png"), Path("other/a.webp")]
    masks = [Path("m/b_mask.png"), Path("m/a_mask.png"), Path("m/a.png"), Path("m/b.tif")]
    pairs = pair_masks(inputs, masks)
    assert pairs == {
        Path("in/a.png"): Path("m/a.png"),
        Path("in/b.jpg"): Path("m/b.tif"),
        Path("in/c.png"): None,
        Path("other/a.webp"): Path("m/a.png"),
    }
    assert pair_masks([Path("x.png")], [Path("m/x_mask.jpg")]) == {
        Path("x.png"): Path("m/x_mask.jpg")
    }


def test_unmasked_line_is_short_for_many_inputs() -> None:
    line = unmasked_line([Path(f"p{i}.png") for i in range(25)])
    assert line.startswith("25 input(s) without a mask: p0.png, p1.png")
    assert "p9.png and 15 more" in line and "p10.png" not in line and "\n" not in line


def square(box: tuple[int, int, int, int], size: int = 96) -> np.ndarray:
    out = np.zeros((size, size), dtype=bool)
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1] = True
    return out


@pytest.fixture
def batch(tmp_path):
    """Three photos in `in/`; masks for two of them in `masks/`, under both namings."""
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((96, 96)))
    (tmp_path / "in").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(photo).save(tmp_path / "in" / f"{name}.png")
    boxes = {"a": (10, 10, 30, 30), "b": (50, 40, 80, 70)}
    Image.fromarray(square(boxes["a"]).astype(np.uint8) * 255).save(tmp_path / "masks" / "a.png")
    Image.fromarray(square(boxes["b"]).astype(np.uint8) * 255).save(
        tmp_path / "masks" / "b_mask.png"
    )
    return tmp_path, photo, boxes


def remove(*args: str):
    return CliRunner().invoke(app, ["remove", *args, "--no-refine", "--method", "telea"])


def changed(path: Path, photo: np.ndarray) -> np.ndarray:
    return np.any(np.asarray(Image.open(path).convert("RGB")) != photo, axis=-1)


def test_missing_mask_refuses_the_batch_before_any_work(batch) -> None:
    tmp, photo, boxes = batch
    result = remove(str(tmp / "in"), "--mask", str(tmp / "masks"))
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "c.png" in lines[0] and "a.png" not in lines[0], result.stderr
    assert "--skip-unmasked" in lines[0]
    assert sorted(p.name for p in (tmp / "in").iterdir()) == ["a.png", "b.png", "c.png"]


def test_skip_unmasked_runs_each_input_with_its_own_mask(batch) -> None:
    tmp, photo, boxes = batch
    result = remove(str(tmp / "in"), "--mask", str(tmp / "masks"), "--skip-unmasked")
    assert result.exit_code == 0, result.stderr
    assert "c.png" in result.stderr.split("done")[0]
    assert not (tmp / "in" / "c_remove.png").exists()
    for name in ("a", "b"):
        diff = changed(tmp / "in" / f"{name}_remove.png", photo)
        region = grow(square(boxes[name]).astype(np.float32), 8) > 0
        assert diff.any() and not diff[~region].any(), name  # only its own mask changed
        assert diff[square(boxes[name])].mean() > 0.5


def test_one_mask_file_applies_to_every_input(batch) -> None:
    tmp, photo, boxes = batch
    result = remove(
        str(tmp / "in" / "a.png"), str(tmp / "in" / "c.png"), "--mask", str(tmp / "masks" / "a.png")
    )
    assert result.exit_code == 0, result.stderr
    region = grow(square(boxes["a"]).astype(np.float32), 8) > 0
    for name in ("a", "c"):
        diff = changed(tmp / "in" / f"{name}_remove.png", photo)
        assert diff.any() and not diff[~region].any(), name


def test_all_unmasked_is_an_error_even_when_skipping(batch) -> None:
    tmp, _, _ = batch
    result = remove(str(tmp / "in" / "c.png"), "--mask", str(tmp / "masks"), "--skip-unmasked")
    assert result.exit_code == 2 and "no input has a mask" in result.stderr
