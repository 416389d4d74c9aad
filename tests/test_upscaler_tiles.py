"""Bundled Real-ESRGAN: the fixed tile bound, rows streamed into the 8-bit image, the family name.

Peak memory itself is measured by `bench/realesrgan.py`; here: what the code promises about its
buffers and results (the same pixels as before, no output-size float image, the right model).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image
from skimage import data

from sdenhance.ops.resize import resize
from sdenhance.upscalers.ncnn import ncnn_runner
from sdenhance.upscalers.registry import REGISTRY, get_upscaler
from sdenhance.upscalers.upscale import run_tiled, to_uint8, upscale

COMPACT = ("realesr-animevideov3-x2", "realesr-animevideov3-x3", "realesr-animevideov3-x4")


def crop(h: int, w: int, y: int = 60, x: int = 120) -> Image.Image:
    return Image.fromarray(data.astronaut()[y : y + h, x : x + w])


def test_every_bundled_model_has_a_fixed_tile_bound():
    ncnn = [i for i in REGISTRY if i.kind == "ncnn"]
    assert len(ncnn) == 5
    assert {i.tile for i in ncnn} == {128}  # the activations of one 128-px tile, at most
    assert get_upscaler("lanczos").tile_support is False


@pytest.mark.parametrize("name", COMPACT)
def test_fixed_tile_result_equals_the_old_grid_within_one_level(name):
    # The old default cut a 256×160 photo into 2 × 1 tiles of ≤ 192 px, the bound now into
    # 3 × 2 of ≤ 128 px. The compact models' receptive field nearly fits inside the overlap:
    # the grids agree to one level, but for a few pixels where a tile edge still shows through
    # by a fraction of a level (the old grid too differs from one whole-image pass there).
    img = crop(160, 256)
    new = np.asarray(upscale(img, upscaler=name, threads=1), np.int16)
    old = np.asarray(upscale(img, upscaler=name, threads=1, tile=192), np.int16)
    assert new.shape == old.shape == (160 * int(name[-1]), 256 * int(name[-1]), 3)
    diff = np.abs(new - old)
    assert diff.max() <= 2 and (diff > 1).mean() < 1e-4


def test_streamed_rows_give_the_same_pixels_as_the_whole_float_image():
    img = crop(150, 100)
    fn = ncnn_runner("realesr-animevideov3-x4", 1)
    arr = np.asarray(img, np.float32) / 255.0
    whole = to_uint8(run_tiled(fn, arr, 4, tile=64, overlap=16))
    streamed = np.asarray(upscale(img, 4, upscaler="realesr-animevideov3-x4", tile=64, threads=1))
    assert np.array_equal(streamed, whole)


def test_no_output_size_float_image_is_held():
    # 64×2048 ×4: a float32 output would be 25 MB; the blend band of one row of tiles and
    # one tile's output are 1.6 MB each. tracemalloc sees numpy's buffers (ncnn's and PIL's
    # are not Python's).
    img = crop(512, 64, y=0, x=200).resize((64, 2048))
    upscale(img.crop((0, 0, 16, 16)), 4, upscaler="realesr-animevideov3-x4", threads=1)
    tracemalloc.start()
    try:
        out = upscale(img, 4, upscaler="realesr-animevideov3-x4", threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.size == (256, 8192)
    assert peak < 0.3 * (256 * 8192 * 3 * 4)


@pytest.mark.parametrize("scale,tile", [(3, 0), (2, 64), (2.5, 32)])
def test_a_pass_shrunk_in_8_bits_is_within_one_level_of_the_float_shrink(scale, tile):
    # ×4 then Lanczos to ×3, ×2 or ×2.5: the pass goes to an 8-bit image first, then shrinks
    img = crop(40, 48)
    name = "realesr-animevideov3-x4"
    out = upscale(img, scale, upscaler=name, threads=1, tile=tile)
    assert out.size == (round(48 * scale), round(40 * scale)) and out.mode == "RGB"
    arr = np.asarray(img, np.float32) / 255.0
    ref = to_uint8(resize(run_tiled(ncnn_runner(name, 1), arr, 4, tile=tile, overlap=32), out.size))
    diff = np.abs(np.asarray(out, np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1 and diff.mean() < 0.3


@pytest.mark.parametrize(
    "factor,member",
    [(1.5, 2), (2, 2), (2.5, 3), (3, 3), (3.5, 4), (4, 4), (16, 4)],
)
def test_the_family_name_picks_the_member_made_for_the_factor(factor, member):
    got = REGISTRY.for_factor("realesr-animevideov3", factor)
    assert got.name == f"realesr-animevideov3-x{member}"
    # a model id is that model, whatever the factor; other models have no family
    assert REGISTRY.for_factor("realesr-animevideov3-x4", factor).name.endswith("-x4")
    assert REGISTRY.for_factor("realesrgan-x4plus", factor).name == "realesrgan-x4plus"


def test_upscale_by_family_name_runs_the_exact_factor_model():
    img = crop(24, 32)
    labels = []
    out = upscale(
        img,
        2,
        upscaler="realesr-animevideov3",
        threads=1,
        progress=lambda label, done, total: labels.append(label),
    )
    assert set(labels) == {"realesr-animevideov3-x2 ×2"}
    exact = upscale(img, 2, upscaler="realesr-animevideov3-x2", threads=1)
    assert np.array_equal(np.asarray(out), np.asarray(exact))
    # no scale given: the family's own (×4) factor
    assert upscale(img, upscaler="realesr-animevideov3", threads=1).size == (128, 96)
