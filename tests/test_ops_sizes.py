"""ops.sizes: one rounding of scaled sizes for every stage, the latent grid, step counts."""

from __future__ import annotations

import numpy as np
import pytest

from sdenhance.ops import sizes
from sdenhance.stages import resize, tile_upscale
from sdenhance.upscalers.upscale import upscale


def test_halves_round_up_everywhere() -> None:
    # 3 px × 1.5 = 4.5 and 5 px × 1.5 = 7.5: half-to-even would give 4 and 8
    assert sizes.target_size((3, 5), scale=1.5) == (5, 8)
    assert resize.target_size((3, 5), resize.Options(scale=1.5)) == (5, 8)
    assert tile_upscale.target_size((3, 5), tile_upscale.Options(scale=1.5)) == (5, 8)
    from PIL import Image

    out = upscale(Image.new("RGB", (3, 5)), scale=1.5, upscaler="lanczos")
    assert out.size == (5, 8)


def test_one_side_keeps_the_aspect_and_nothing_is_below_one_pixel() -> None:
    assert sizes.target_size((640, 480), width=1000) == (1000, 750)
    assert sizes.target_size((640, 480), height=240) == (320, 240)
    assert sizes.target_size((1000, 1), width=10) == (10, 1)
    assert sizes.target_size((2, 2), scale=0.1) == (1, 1)
    with pytest.raises(ValueError):
        sizes.target_size((2, 2))


def test_latent_canvas_and_processing_size_are_whole_cells() -> None:
    assert sizes.latent_canvas((1, 8)) == (8, 8)
    assert sizes.latent_canvas((1001, 750)) == (1008, 752)
    # longer side to the native size, aspect kept to the nearest cell
    assert sizes.processing_size((100, 50), 512) == (512, 256)
    assert sizes.processing_size((30, 200), 512) == (80, 512)
    assert sizes.processing_size((1, 4000), 64) == (8, 64)


def test_latent_cover_selects_whole_cells_with_any_selected_pixel() -> None:
    mask = np.zeros((16, 24), np.uint8)
    mask[9, 3] = 255
    cover = sizes.latent_cover(mask)
    assert cover[8:16, 0:8].all()
    assert cover.sum() == 64


@pytest.mark.parametrize(
    "steps,strength,expected", [(20, 0.5, 20), (5, 0.1, 10), (4, 1.0, 4), (5, 0.0, 5)]
)
def test_effective_steps_give_at_least_one_denoising_step(steps, strength, expected) -> None:
    n = sizes.effective_steps(steps, strength)
    assert n == expected
    if strength > 0:
        assert int(n * strength) >= 1
