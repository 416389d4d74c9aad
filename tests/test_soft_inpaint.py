"""Soft inpainting: a graded mask changes each pixel in proportion to its value."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from sdenhance import Enhancer, SdenhanceError
from sdenhance.ops.soft_mask import cell_values, free_after, soft_values, threshold

LEVELS = (0, 64, 128, 192, 255)  # mask values of five 16-px wide bands
SOFT = {"steps": 12, "strength": 1.0, "grow": 0, "feather": 0, "area": "whole", "seed": 3}
SOFT |= {"color_match": False, "scheduler": "euler", "soft": True}


def test_soft_values_keep_the_grey_levels_of_every_mode() -> None:
    grey = Image.fromarray(np.array([[0, 51, 255]], np.uint8), "L")
    assert np.allclose(soft_values(grey), [[0.0, 0.2, 1.0]])
    wide = Image.fromarray(np.array([[0, 13107, 65535]], np.int32), "I")
    assert np.allclose(soft_values(wide), [[0.0, 0.2, 1.0]])
    floats = Image.fromarray(np.array([[-1.0, 0.25, 7.0]], np.float32), "F")
    assert np.allclose(soft_values(floats), [[0.0, 0.25, 1.0]])
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (255, 255, 255, 0)  # white but transparent: nothing
    rgba[0, 1] = (255, 255, 255, 255)
    assert np.allclose(soft_values(Image.fromarray(rgba, "RGBA")), [[0.0, 1.0]])


def test_cells_take_their_largest_value() -> None:
    values = np.zeros((16, 8), np.float32)
    values[3, 5] = 0.5
    values[12, 0] = 1.0
    assert np.array_equal(cell_values(values, 8), [[0.5], [1.0]])


def test_a_pixel_is_free_for_the_last_fraction_of_steps_its_value_says() -> None:
    total = 10
    assert threshold(0, total) == 1.0 and threshold(total, total) == 0.0
    values = np.array([0.0, 0.3, 0.5, 1.0], np.float32)
    free = np.array([free_after(values, done, total) for done in range(1, total)])
    # resets happen before steps 1..9: value 1 never reset, value 0 always, 0.5 in the last half
    assert free.sum(axis=0).tolist() == [0, 3, 5, 9]
    assert np.all(np.diff(free, axis=0) >= 0)  # once free, free until the end


@pytest.fixture
def scene() -> Image.Image:
    return Image.fromarray(data.chelsea()).crop((60, 40, 140, 104))  # 80×64


def bands(size: tuple[int, int]) -> Image.Image:
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    for n, level in enumerate(LEVELS):
        mask[8:56, n * 16 : (n + 1) * 16] = level
    return Image.fromarray(mask, "L")


def test_change_grows_with_the_mask_value_and_zero_stays_exact(models, scene) -> None:
    mask = bands(scene.size)
    out = Enhancer(models["sd15"]).inpaint(scene, mask, prompt="a red ball", **SOFT)
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(scene, np.int16)).mean(axis=-1)
    level = np.asarray(mask)
    means = [float(diff[level == v].mean()) for v in LEVELS]
    assert means[0] == 0.0 and np.all(diff[level == 0] == 0)  # value 0 and outside: exact
    assert all(b > a for a, b in zip(means, means[1:], strict=False)), means
    assert means[-1] > 2 * means[1], means


def test_a_white_mask_repaints_as_without_soft(models, scene) -> None:
    mask = Image.fromarray((np.asarray(bands(scene.size)) == 255).astype(np.uint8) * 255, "L")
    enhancer = Enhancer(models["sd15"])
    soft = enhancer.inpaint(scene, mask, prompt="a red ball", **SOFT)
    plain = enhancer.inpaint(scene, mask, prompt="a red ball", **(SOFT | {"soft": False}))
    assert np.array_equal(np.asarray(soft), np.asarray(plain))
    assert np.any(np.asarray(soft) != np.asarray(scene))


def test_nine_channel_models_are_refused(models, scene) -> None:
    with pytest.raises(SdenhanceError, match="4 channels"):
        Enhancer(models["sd15"], inpaint_model=models["sd15-inpaint"]).inpaint(
            scene, bands(scene.size), prompt="x", **SOFT
        )


def test_the_pipeline_resets_with_a_map_that_frees_more_cells_each_step(
    models, scene, monkeypatch
) -> None:
    import sdenhance.stages.inpaint as stage

    seen: list[float] = []
    real = stage.soft_step

    def spy(pipe, model_mask, cell):
        step = real(pipe, model_mask, cell)

        def recorded(pipe_, i, kwargs):
            seen.append(float(kwargs["mask"].float().mean()))  # the mask the pipeline holds
            return step(pipe_, i, kwargs)

        return recorded

    monkeypatch.setattr(stage, "soft_step", spy)
    Enhancer(models["sd15"]).inpaint(scene, bands(scene.size), prompt="x", **SOFT)
    # 4 of 5 bands (rows 8..56 of 64) selected at first; then the map frees one band after
    # another: before the last step every band but value 0 is free, at first only value 1 is
    assert len(seen) == SOFT["steps"]
    assert seen[0] == pytest.approx(4 / 5 * 48 / 64)
    assert seen[1] == pytest.approx(1 / 5 * 48 / 64)
    assert seen[-1] == pytest.approx(4 / 5 * 48 / 64)
    assert all(b >= a for a, b in zip(seen[1:], seen[2:], strict=False)), seen
