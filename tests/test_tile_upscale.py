"""The tiled upscaler: seam-freedom on a stand-in denoiser, then the real stage on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError
from sdenhance.cli import app
from sdenhance.diffusion import tiled_denoise as td
from sdenhance.diffusion import tiled_vae
from sdenhance.ops import tiling
from sdenhance.stages import tile_denoise
from sdenhance.stages import tile_upscale as tu

# ---------------------------------------------------------------------------------------------
# a deterministic stand-in: a fixed 5×5 convolution + tanh (finite receptive field, zero padding
# at tile edges, so tiles DO see different context than the untiled canvas) and a linear step


class StandInScheduler:
    order = 1

    def scale_model_input(self, x, t):
        return x

    def step(self, noise, t, latents, generator=None, return_dict=False):
        return (latents - 0.3 * noise,)


def stand_in_predict(crops, group, t):
    g = torch.Generator().manual_seed(0)
    kernel = torch.rand(crops.shape[1], crops.shape[1], 5, 5, generator=g) / 25.0
    return torch.tanh(torch.nn.functional.conv2d(crops, kernel, padding=2) * 2.0)


STEPS = 3
MARGIN = 2 * STEPS  # receptive radius after STEPS steps of a 5×5 kernel


def gradient_canvas(h=64, w=128):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h), 0.5 * np.ones_like(xx)])
    return torch.from_numpy(base)[None]


def run_tiled(latents, tiles, overlap, steps=STEPS):
    return td.tiled_denoise(
        latents, StandInScheduler(), list(range(steps)), tiles, overlap, stand_in_predict, batch=3
    )


def run_untiled(latents, steps=STEPS):
    x = latents
    for t in range(steps):
        x = x - 0.3 * stand_in_predict(x, None, t)
    return x


def seam_jumps(x: torch.Tensor, tiles, band: int = 2) -> tuple[float, float]:
    """Largest |step| between neighbour pixels within `band` of a tile border vs elsewhere.

    The canvas's own outer frame (where zero padding shapes even the untiled result) is left out
    of both measures.
    """
    a = x[0].numpy()[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    dx = np.abs(np.diff(a, axis=2)).max(axis=(0, 1))  # jump between column i and i+1
    dy = np.abs(np.diff(a, axis=1)).max(axis=(0, 2))
    ex = [e - MARGIN - 1 for t in tiles for e in (t.x0, t.x1)]
    ey = [e - MARGIN - 1 for t in tiles for e in (t.y0, t.y1)]
    near_x = [any(abs(i - e) <= band for e in ex) for i in range(len(dx))]
    near_y = [any(abs(i - e) <= band for e in ey) for i in range(len(dy))]
    border = max(
        [d for d, n in zip(dx, near_x, strict=True) if n]
        + [d for d, n in zip(dy, near_y, strict=True) if n]
    )
    inside = max(
        [d for d, n in zip(dx, near_x, strict=True) if not n]
        + [d for d, n in zip(dy, near_y, strict=True) if not n]
    )
    return float(border), float(inside)


def test_one_tile_over_the_whole_canvas_equals_untiled():
    lat = gradient_canvas()
    tiles = tiling.tile_grid(128, 64, 128, 64, 8)
    assert len(tiles) == 1
    assert torch.equal(run_tiled(lat, tiles, 8), run_untiled(lat))


@pytest.mark.parametrize("tile,overlap", [(32, 8), (48, 16), (40, 12)])
def test_no_jump_across_tile_borders(tile, overlap):
    lat = gradient_canvas()
    tw, th = tiling.fit_tile(128, tile, overlap), tiling.fit_tile(64, tile, overlap)
    tiles = tiling.tile_grid(128, 64, tw, th, overlap)
    assert len(tiles) > 2
    out = run_tiled(lat, tiles, overlap)
    border, inside = seam_jumps(out, tiles)
    assert border <= inside, (border, inside)
    # the per-step receptive radius (2) fits in the zero-weight edge margin: tiling is exact
    assert td.edge_margin(overlap) >= 2
    assert torch.allclose(out, run_untiled(lat), atol=1e-6)


def test_without_edge_margin_tiles_leak_padding_but_stay_smooth():
    lat = gradient_canvas()
    tiles = tiling.tile_grid(128, 64, 32, 32, 8)
    weights = [torch.from_numpy(w) for w in td.tile_weights(tiles, 128, 64, 8, margin=0)]
    x = lat
    for t in range(STEPS):
        x = x - 0.3 * td.merge_predictions(x, tiles, weights, stand_in_predict, t, 4)
    assert not torch.allclose(x, run_untiled(lat), atol=1e-4)


def test_the_seam_measure_catches_a_naive_hard_paste():
    """Control: pasting independently denoised tiles without merging leaves visible steps."""
    lat = gradient_canvas()
    tiles = tiling.tile_grid(128, 64, 32, 32, 0)
    out = torch.zeros_like(lat)
    for t in tiles:
        out[:, :, t.y0 : t.y1, t.x0 : t.x1] = run_untiled(lat[:, :, t.y0 : t.y1, t.x0 : t.x1])
    border, inside = seam_jumps(out, tiles)
    assert border > inside


def test_tile_weights_sum_to_one():
    tiles = tiling.tile_grid(50, 30, 20, 16, 6)
    total = np.zeros((30, 50))
    for t, w in zip(tiles, td.tile_weights(tiles, 50, 30, 6), strict=True):
        total[t.slices] += w
    assert np.allclose(total, 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# plan and validation (no model)


def test_plan_counts_tiles_and_steps():
    opts = tu.Options(scale=4, tile=512, overlap=64, creativity=0.5, steps=20)
    p = tu.plan((300, 200), opts)
    assert p.size_out == (1200, 800) and p.canvas == (1200, 800)
    assert len(p.tiles) == 3 * 2 and p.denoise_steps == 10 and p.evaluations == 60
    assert "1200×800" in p.describe()


def test_vae_grid_covers_any_canvas_side_by_side():
    for (w, h), tile in [((4096, 2048), 512), ((80, 48), 512), ((8, 8), 512), ((600, 8), 128)]:
        tiles = tiled_vae.vae_grid(w, h, tile)
        cover = np.zeros((h // 8, w // 8), int)
        for t in tiles:
            cover[t.slices] += 1
            assert t.width * 8 <= tile and t.height * 8 <= tile
        assert (cover >= 1).all()
    assert len(tiled_vae.vae_grid(4096, 2048, 512)) == 8 * 4


def test_target_size_and_limits():
    assert tu.target_size((100, 50), tu.Options(width=300)) == (300, 150)
    assert tu.target_size((100, 50), tu.Options(height=75)) == (150, 75)
    # 51 × 1.5 = 76.5: halves round up, as in resize and the pre-upscale (one rounding)
    assert tu.target_size((101, 51), tu.Options(scale=1.5)) == (152, 77)
    with pytest.raises(SdenhanceError, match="smaller than the input"):
        tu.target_size((100, 50), tu.Options(width=50, height=50))
    with pytest.raises(SdenhanceError, match="MP"):
        tu.target_size((10000, 10000), tu.Options(scale=8))


@pytest.mark.parametrize(
    "bad,word",
    [
        ({"tile": 100}, "multiple of 8"),
        ({"tile": 32}, "≥ 64"),
        ({"overlap": 512, "tile": 512}, "smaller than"),
        ({"creativity": 1.2}, "creativity"),
        ({"scale": 0.5}, "scale"),
        ({"color_fix": "magic"}, "color_fix"),
        ({"tile_batch": 0}, "tile_batch"),
    ],
)
def test_bad_options_are_refused_before_loading(photo, bad, word):
    with pytest.raises(SdenhanceError, match=word):
        Enhancer("nobody/missing").upscale(photo, **bad)


# ---------------------------------------------------------------------------------------------
# the real stage on tiny random models


def small_opts(**kw):
    base = dict(
        scale=2,
        creativity=0.5,
        steps=4,
        upscaler="lanczos",
        tile=64,
        overlap=16,
        tile_batch=3,
        vae_tile=128,
    )
    return {**base, **kw}


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_upscale_tiny_model_deterministic(models, photo, family):
    enh = Enhancer(models[family], controlnet=models[f"{family}-controlnet"])
    a = enh.upscale(photo, seed=4, **small_opts())
    b = enh.upscale(photo, seed=4, **small_opts())
    assert a.size == (192, 160)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert enh.last_record["tiles"] > 1
    c = enh.upscale(photo, seed=5, **small_opts())
    assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize(
    "size,kw,expect",
    [
        ((37, 23), {"scale": 2}, (74, 46)),
        ((40, 1), {"scale": 3}, (120, 3)),
        ((13, 70), {"scale": 1.5}, (20, 105)),
        ((30, 20), {"width": 77, "height": 41}, (77, 41)),
    ],
)
def test_any_size_any_scale(models, size, kw, expect):
    img = Image.fromarray(
        (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    )
    opts = small_opts(**kw)
    if "width" in kw:
        opts.pop("scale")
    out = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"]).upscale(
        img, seed=1, **opts
    )
    assert out.size == expect


def test_alpha_is_preserved(models):
    rgba = Image.new("RGBA", (32, 24), (30, 160, 90, 255))
    a = np.asarray(rgba).copy()
    a[:, :12, 3] = 0
    out = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"]).upscale(
        Image.fromarray(a), seed=0, **small_opts()
    )
    assert out.mode == "RGBA" and out.size == (64, 48)
    alpha = np.asarray(out)[:, :, 3]
    assert alpha[:, :20].max() <= 8 and alpha[:, 30:].min() >= 247


def test_colour_fix_keeps_the_tone_of_the_pre_upscale(models, photo):
    from sdenhance.ops.metrics import delta_e

    enh = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"])
    ref = photo.resize((192, 160), Image.Resampling.LANCZOS)
    fixed = enh.upscale(photo, seed=2, **small_opts(creativity=0.8))
    raw = enh.upscale(photo, seed=2, **small_opts(creativity=0.8, color_fix="none"))
    to = lambda im: np.asarray(im, np.float32) / 255  # noqa: E731
    assert delta_e(to(fixed), to(ref)) < delta_e(to(raw), to(ref))


def test_creativity_zero_needs_no_model(photo):
    out = Enhancer("nobody/missing").upscale(photo, scale=2, creativity=0, upscaler="lanczos")
    assert out.size == (192, 160)


def test_cli_upscale_with_tiny_model_writes_metadata(models, tmp_path, photo):
    src = tmp_path / "cat.png"
    photo.save(src)
    result = CliRunner().invoke(
        app,
        [
            "upscale",
            str(src),
            "--model",
            models["sd15"],
            "--controlnet",
            models["sd15-controlnet"],
            "--scale",
            "2",
            "--creativity",
            "0.5",
            "--steps",
            "2",
            "--upscaler",
            "lanczos",
            "--tile",
            "64",
            "--overlap",
            "16",
            "--seed",
            "9",
            "--prompt",
            "a cat",
            "-o",
            str(tmp_path / "{stem}_{scale}.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "cat_x2.png"
    assert out.exists()
    from sdenhance.io.load import read_metadata

    meta = read_metadata(out)
    assert meta.sdenhance["seed"] == 9 and meta.sdenhance["steps"][0]["stage"] == "upscale"
    assert meta.parameters["Seed"] in (9, "9")


# ---------------------------------------------------------------------------------------------
# memory


def test_out_of_memory_steps_down_the_tile_batch(models, photo, monkeypatch, caplog):
    real = tile_denoise.make_predict
    batches = []

    def fragile(*args, **kwargs):
        predict = real(*args, **kwargs)

        def wrapped(crops, group, t):
            batches.append(crops.shape[0])
            if crops.shape[0] > 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return predict(crops, group, t)

        return wrapped

    monkeypatch.setattr(tile_denoise, "make_predict", fragile)
    enh = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"])
    with caplog.at_level("WARNING", logger="sdenhance"):
        out = enh.upscale(photo, seed=3, **small_opts(tile_batch=4))
    assert out.size == (192, 160)
    assert "out of memory" in caplog.text and enh.last_record["memory_fallback"]["tile_batch"] == 1
    assert batches[0] > 1 and set(batches[-4:]) == {1}
    # the retry gives what a first run at tile batch 1 gives
    monkeypatch.setattr(tile_denoise, "make_predict", real)
    ref = enh.upscale(photo, seed=3, **small_opts(tile_batch=1))
    assert np.array_equal(np.asarray(out), np.asarray(ref))


def test_memory_fallbacks_end_at_batch_one_and_small_tiles():
    tries = tu.memory_fallbacks(tu.Options(tile_batch=8, tile=1024, overlap=64), 512)
    assert [t.tile_batch for t in tries[:4]] == [8, 4, 2, 1]
    assert tries[-1].tile == 256 and tries[-1].tile_batch == 1 and tries[-1].overlap < 256


def test_cpu_refuses_work_that_cannot_fit(models, photo, monkeypatch):
    import psutil

    class Tiny:
        available = 50 * 2**20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    with pytest.raises(SdenhanceError, match=r"needs about .* GiB .* free"):
        Enhancer(models["sd15"], controlnet=models["sd15-controlnet"]).upscale(
            photo, seed=0, **small_opts(scale=8)
        )


def test_estimate_beyond_the_image_buffers_is_bounded_by_the_tile():
    opts = tu.Options(scale=4, creativity=0.3)
    buffers = lambda p: p.canvas[0] * p.canvas[1] * 3 * 4 * 6  # noqa: E731
    extra = []
    for side in (256, 1024, 2048):
        p = tu.plan((side, side), opts)
        extra.append(tu.estimate_bytes(p, opts, "sd15", 4) - buffers(p))
    full_tile_batch = tu.ACTIVATION_BYTES["sd15"] * opts.tile_batch * 2  # CFG pairs
    assert all(e <= full_tile_batch for e in extra)  # 1 MP or 64 MP output: same bound
    assert extra[2] <= extra[1]
