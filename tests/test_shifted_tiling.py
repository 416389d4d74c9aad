"""Shifted non-overlapping tile grids (`--tiling shifted`): coverage, offsets, seams, the stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_tile_upscale import (
    STEPS,
    StandInScheduler,
    gradient_canvas,
    run_tiled,
    run_untiled,
    seam_jumps,
    small_opts,
    stand_in_predict,
)
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.diffusion import shifted_denoise as sd
from sdenhance.diffusion.predict import control_crops
from sdenhance.io.load import read_metadata
from sdenhance.ops import shifted_tiles as st
from sdenhance.ops import tiling
from sdenhance.recipes import load_recipe
from sdenhance.rerun import parse_record
from sdenhance.stages import tile_upscale as tu

SIZES = [(64, 64), (125, 94), (192, 192), (256, 144), (512, 512), (37, 130)]  # latent cells


class Recorder:
    """A stand-in denoiser that notes every call: the crops' cells and where they lie."""

    def __init__(self):
        self.calls = []

    def __call__(self, crops, group, t):
        assert all((g.height, g.width) == tuple(crops.shape[-2:]) for g in group)
        self.calls.append((t, crops.clone(), list(group)))
        return torch.tanh(crops)


def wrapped(array: np.ndarray, tile: tiling.Tile) -> np.ndarray:
    """`array[..., tile]` with indices past the edge wrapping to the start (numpy, no roll)."""
    h, w = array.shape[-2:]
    rows = np.arange(tile.y0, tile.y1) % h
    cols = np.arange(tile.x0, tile.x1) % w
    return array[..., rows[:, None], cols[None, :]]


@pytest.mark.parametrize("size", SIZES)
def test_every_step_evaluates_exactly_the_image_once(size):
    width, height = size
    tiles = st.partition(width, height, 64, 64)
    latents = torch.randn(1, 4, height, width, generator=torch.Generator().manual_seed(1))
    predict = Recorder()
    steps = list(range(5))
    sd.shifted_denoise(latents, StandInScheduler(), steps, tiles, predict, seed=3, batch=3)
    for step in steps:
        calls = [c for c in predict.calls if c[0] == step]
        assert sum(c[1].shape[0] * c[1].shape[2] * c[1].shape[3] for c in calls) == width * height
        assert all(c[1].shape[0] <= 3 for c in calls)  # the batch limit holds
        cover = np.zeros((height, width), int)
        for _, _, group in calls:
            for tile in group:
                np.add.at(
                    cover,
                    np.ix_(
                        np.arange(tile.y0, tile.y1) % height, np.arange(tile.x0, tile.x1) % width
                    ),
                    1,
                )
        assert (cover == 1).all()


def test_crops_are_the_cells_the_tiles_name():
    """What the model sees of each tile is the canvas at that tile's (wrapping) place, which is
    what the ControlNet's crops of the control image follow."""
    width, height = 125, 94
    tiles = st.partition(width, height, 64, 64)
    canvas = torch.randn(1, 4, height, width, generator=torch.Generator().manual_seed(2))
    predict = Recorder()
    out = sd.shifted_predictions(canvas, tiles, (37, 11), predict, 0, 4)
    seen = 0
    for _, crops, group in predict.calls:
        for crop, tile in zip(crops, group, strict=True):
            assert np.array_equal(crop.numpy(), wrapped(canvas[0].numpy(), tile))
            seen += 1
    assert seen == len(tiles)
    # each cell's prediction is the one made from its own value
    assert torch.allclose(out, torch.tanh(canvas))


def test_the_control_image_is_cropped_where_the_latent_crop_lies():
    canvas = np.random.default_rng(3).random((3, 12, 20)).astype(np.float32)  # (C, h, w) cells
    control = np.kron(canvas, np.ones((8, 8), np.float32)).transpose(1, 2, 0)  # 8 px per cell
    for tile in (tiling.Tile(2, 1, 9, 6), tiling.Tile(15, 9, 22, 14), tiling.Tile(19, 11, 27, 16)):
        crop = control_crops(control, [tile], "cpu", torch.float32)[0].numpy()
        assert np.array_equal(crop[:, ::8, ::8], wrapped(canvas, tile))
        assert crop.shape == (3, tile.height * 8, tile.width * 8)


def test_offsets_differ_between_steps_and_follow_the_seed():
    tiles = st.partition(125, 94, 64, 64)
    offsets = [st.step_offsets(i, 7, tiles) for i in range(40)]
    assert all(0 <= dx < tiles[0].width and 0 <= dy < tiles[0].height for dx, dy in offsets)
    for a, b in zip(offsets, offsets[1:], strict=False):
        assert a[0] != b[0] and a[1] != b[1]  # no border line stays put from one step to the next
    assert len(set(offsets)) == len(offsets)
    assert offsets == [st.step_offsets(i, 7, tiles) for i in range(40)]
    assert offsets != [st.step_offsets(i, 8, tiles) for i in range(40)]
    # an axis of one tile never moves
    one_row = st.partition(200, 40, 64, 64)
    assert {st.step_offsets(i, 7, one_row)[1] for i in range(10)} == {0}


def test_partition_is_the_fewest_tiles_of_near_equal_size():
    for size, max_tile in [(125, 64), (94, 64), (512, 64), (64, 64), (7, 64), (129, 64)]:
        spans = st.even_spans(size, max_tile)
        lengths = [b - a for a, b in spans]
        assert sum(lengths) == size and spans[0][0] == 0 and spans[-1][1] == size
        assert max(lengths) <= max_tile and max(lengths) - min(lengths) <= 1
        assert len(spans) == -(-size // max_tile)
        assert lengths == sorted(lengths, reverse=True)
    tiles = st.partition(125, 94, 64, 64)
    assert len({(t.width, t.height) for t in tiles}) <= 4
    groups = st.shape_groups(tiles, 4)
    assert sorted(i for g in groups for i in g) == list(range(len(tiles)))
    assert all(len({(tiles[i].width, tiles[i].height) for i in g}) == 1 for g in groups)


def test_one_tile_is_denoised_as_by_the_merged_grid():
    lat = gradient_canvas()
    tiles = st.partition(128, 64, 128, 64)
    assert len(tiles) == 1
    out = sd.denoise_tiles(
        "shifted", lat, StandInScheduler(), list(range(STEPS)), tiles, 8, stand_in_predict, seed=5
    )
    assert torch.equal(out, run_untiled(lat))


# ---------------------------------------------------------------------------------------------
# seams on the stand-in denoiser of tests/test_tile_upscale.py (5×5 convolution, zero padding)


def max_jump(x: torch.Tensor, frame: int = 2 * STEPS) -> float:
    """The largest step between neighbouring cells, the canvas's outer frame left out."""
    a = x[0].numpy()[:, frame:-frame, frame:-frame]
    return float(max(np.abs(np.diff(a, axis=1)).max(), np.abs(np.diff(a, axis=2)).max()))


def fixed_no_overlap(lat, tiles):
    x = lat
    for t in range(STEPS):
        x = x - 0.3 * sd.shifted_predictions(x, tiles, (0, 0), stand_in_predict, t, 3)
    return x


def test_shifting_the_grid_shrinks_the_seams_of_a_fixed_non_overlapping_grid():
    lat = gradient_canvas()
    tiles = st.partition(128, 64, 32, 32)
    fixed = fixed_no_overlap(lat, tiles)
    border, inside = seam_jumps(fixed, tiles)
    assert border > 2 * inside  # the control: a fixed grid leaves steps at its borders
    for seed in range(4):
        shifted = sd.shifted_denoise(
            lat, StandInScheduler(), list(range(STEPS)), tiles, stand_in_predict, seed=seed
        )
        assert max_jump(shifted) < 0.6 * max_jump(fixed)


def test_the_default_grid_has_the_smaller_seams_on_the_stand_in():
    """The default tiling is the grid whose largest step between neighbours comes closest to
    the untiled denoiser's: with no overlap some border is always fresh, so a step of the
    stand-in (which never shrinks) leaves a trace the merged grid does not."""
    lat = gradient_canvas()
    untiled = max_jump(run_untiled(lat))
    merged_tiles = tiling.tile_grid(128, 64, 40, 40, 16)
    merged = abs(max_jump(run_tiled(lat, merged_tiles, 16)) - untiled)
    shifted = max(
        abs(
            max_jump(
                sd.shifted_denoise(
                    lat,
                    StandInScheduler(),
                    list(range(STEPS)),
                    st.partition(128, 64, 40, 40),
                    stand_in_predict,
                    seed=seed,
                )
            )
            - untiled
        )
        for seed in range(4)
    )
    best = "shifted" if shifted <= merged else "merged"
    assert tu.Options().tiling == best, (merged, shifted)


# ---------------------------------------------------------------------------------------------
# the stage on tiny random models


def test_plan_of_a_shifted_grid_covers_the_canvas_once():
    opts = tu.Options(width=1000, height=750, tile=512, overlap=64, tiling="shifted")
    work = tu.plan((500, 375), opts)
    assert sum(t.width * t.height for t in work.tiles) * 64 == 1000 * 752
    merged = tu.plan((500, 375), tu.Options(width=1000, height=750, tile=512, overlap=64))
    assert sum(t.width * t.height for t in merged.tiles) * 64 > 1.2 * 1000 * 752
    assert max(t.width for t in work.tiles) * 8 <= 512


def test_upscale_with_shifted_tiles_reproduces_and_records_it(models, photo, tmp_path):
    enh = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"])
    kw = small_opts(tiling="shifted")
    a = enh.upscale(photo, seed=4, **kw)
    record = enh.last_record
    b = enh.upscale(photo, seed=4, **kw)
    assert a.size == (192, 160) and record["tiles"] > 1
    assert np.array_equal(np.asarray(a), np.asarray(b))
    merged = enh.upscale(photo, seed=4, **small_opts(tiling="merged"))
    assert not np.array_equal(np.asarray(a), np.asarray(merged))
    step = record["steps"][-1]
    assert step["options"]["tiling"] == "shifted"
    parse_record(record, "out.png")  # a record `run --from` accepts


def test_cli_shifted_upscale_is_recorded_and_run_from_reproduces_it(models, tmp_path, photo):
    src = tmp_path / "cat.png"
    photo.save(src)
    runner = CliRunner()
    model_args = ["--model", models["sd15"], "--controlnet", models["sd15-controlnet"]]
    tiny = ["--scale", "2", "--creativity", "0.5", "--steps", "4", "--upscaler", "lanczos"]
    tiny += ["--tile", "64", "--overlap", "16", "--seed", "7"]
    first = runner.invoke(app, ["upscale", str(src), *model_args, *tiny, "--tiling", "shifted"])
    assert first.exit_code == 0, first.output
    made = tmp_path / "cat_upscale.png"
    meta = read_metadata(made)
    assert meta.sdenhance["steps"][-1]["options"]["tiling"] == "shifted"
    assert meta.parameters["Tiling"] == "shifted"
    again = runner.invoke(
        app, ["run", "--from", str(made), str(src), "-o", str(tmp_path / "a.png")]
    )
    assert again.exit_code == 0, again.output
    assert np.array_equal(np.asarray(Image.open(made)), np.asarray(Image.open(tmp_path / "a.png")))
    bad = runner.invoke(app, ["upscale", str(src), *model_args, *tiny, "--tiling", "spiral"])
    assert bad.exit_code == 2 and "merged" in bad.output + bad.stderr


def test_recipes_take_the_tiling(tmp_path):
    step = '[[steps]]\nstage = "upscale"\noptions = {{ scale = 2, tiling = "{}" }}\n'
    path = tmp_path / "grid.toml"
    path.write_text(step.format("shifted"))
    assert load_recipe(path).validate()[0].options.tiling == "shifted"
    path.write_text(step.format("spiral"))
    with pytest.raises(SdenhanceError, match="tiling"):
        load_recipe(path).validate()
