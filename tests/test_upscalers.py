"""Upscalers: the real bundled Real-ESRGAN on scikit-image photos, tiling, sizes, alpha, errors.

The crops are small so the whole file stays fast on two CPU cores; the one large cost, the
x4plus net, loads once per process (nets are cached per model and thread count).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from sdenhance import Enhancer
from sdenhance.errors import SdenhanceError
from sdenhance.ops.tiling import fit_tile, tile_grid
from sdenhance.stages import Context
from sdenhance.upscalers.ncnn import _ncnn_net, ncnn_model_files, ncnn_runner
from sdenhance.upscalers.registry import (
    EXTRA_HINT,
    REGISTRY,
    UnsupportedUpscalerError,
    UpscalerInfo,
    UpscalerRegistry,
    get_upscaler,
    upscaler_names,
)
from sdenhance.upscalers.upscale import run_tiled, upscale

THREADS = 1  # one thread: steady timings on a busy two-core machine


def photo(name: str, y: int, x: int, h: int, w: int) -> Image.Image:
    return Image.fromarray(getattr(data, name)()[y : y + h, x : x + w])


def f32(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


# --- registry -------------------------------------------------------------------------------


def test_builtin_registry_and_descriptors():
    assert upscaler_names() == [
        "lanczos",
        "bicubic",
        "realesrgan-x4plus",
        "realesrgan-x4plus-anime",
        "realesr-animevideov3-x2",
        "realesr-animevideov3-x3",
        "realesr-animevideov3-x4",
        "realesr-animevideov3",
    ]
    x4 = get_upscaler("realesrgan-x4plus")
    assert (x4.scale, x4.kind, x4.tile_support) == (4, "ncnn", True)
    assert get_upscaler("realesr-animevideov3") is get_upscaler("realesr-animevideov3-x4")
    assert [get_upscaler(f"realesr-animevideov3-x{s}").scale for s in (2, 3, 4)] == [2, 3, 4]
    assert get_upscaler("lanczos").kind == "resample" and not get_upscaler("lanczos").tile_support
    assert all(info.description for info in REGISTRY)


def test_registry_refuses_duplicate_ids_and_aliases():
    reg = UpscalerRegistry()
    reg.add(UpscalerInfo("a", 2, "A", True, "ncnn"), aliases=("b",))
    with pytest.raises(ValueError, match="'a' is already registered"):
        reg.add(UpscalerInfo("a", 4, "again", True, "ncnn"))
    with pytest.raises(ValueError, match="'b' is already registered"):
        reg.add(UpscalerInfo("b", 4, "alias clash", True, "ncnn"))
    assert reg.get("b").name == "a" and "b" in reg and "c" not in reg


def _outputs(line: str) -> list[str]:
    """Output blob names of one ncnn .param layer line: type name n_in n_out in... out... k=v."""
    tokens = line.split()
    n_in, n_out = int(tokens[2]), int(tokens[3])
    return tokens[4 + n_in : 4 + n_in + n_out]


def test_bundled_weights_are_found_and_use_the_expected_blobs():
    for name in ("realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3-x3"):
        param, weights = ncnn_model_files(name)
        assert param.suffix == ".param" and weights.stat().st_size > 1_000_000
        layers = param.read_text().splitlines()[2:]
        assert layers[0].split()[0] == "Input" and _outputs(layers[0]) == ["data"]
        assert sum("output" in _outputs(line) for line in layers) == 1


# --- (a) quality: Real-ESRGAN ×4 restores the sharpness bicubic loses ----------------------


def _gradient_energy(a: np.ndarray) -> float:
    gy, gx = np.gradient(a.mean(axis=2))
    return float(np.hypot(gx, gy).mean())


@pytest.mark.parametrize("name,y,x", [("astronaut", 30, 160), ("chelsea", 80, 120)])
def test_x4plus_restores_sharpness_faithfully(name, y, x):
    # Downscale a real photo ×4 (box = camera-like averaging), enlarge it back both ways and
    # compare with the original. PSNR/SSIM reward blur when detail is gone (the perception-
    # distortion trade-off), so the measures are: gradient energy relative to the original
    # (how much edge sharpness came back: ≈0.5 for bicubic) and fidelity to the input
    # (the result, shrunk again, must still match what was given: nothing invented or shifted).
    hr = photo(name, y, x, 128, 128)
    lr = hr.reduce(4)
    esr = upscale(lr, 4, threads=THREADS)
    bic = lr.resize(hr.size, Image.Resampling.BICUBIC)
    assert esr.size == hr.size and esr.mode == "RGB"
    g_hr, g_esr, g_bic = (_gradient_energy(f32(im)) for im in (hr, esr, bic))
    assert g_bic / g_hr < 0.65
    assert 0.75 < g_esr / g_hr < 1.25  # sharp like the original, not noisier than it
    assert abs(1 - g_esr / g_hr) < 0.5 * abs(1 - g_bic / g_hr)
    fidelity = peak_signal_noise_ratio(f32(lr), f32(esr.reduce(4)), data_range=1.0)
    assert fidelity > 24.0


# --- (b) tiles: blended tiles agree with one whole-image pass -------------------------------


def test_compact_model_tiled_equals_untiled_everywhere():
    # animevideov3's receptive field (~18 px) fits inside its 32-px overlap, so after the
    # blend every pixel agrees with the untiled pass to within 1/255 (float, no rounding).
    arr = f32(photo("astronaut", 100, 60, 64, 192))
    fn = ncnn_runner("realesr-animevideov3-x4", THREADS)
    whole = fn(arr)
    tiled = run_tiled(fn, arr, 4, tile=128, overlap=32)
    assert len(tile_grid(192, 64, fit_tile(192, 128, 32), fit_tile(64, 128, 32), 32)) == 2
    assert tiled.shape == whole.shape == (256, 768, 3)
    assert np.abs(tiled - whole).max() <= 1 / 255


def test_x4plus_tiled_matches_untiled_away_from_the_overlap():
    # RRDB's receptive field is far wider than any affordable overlap, so inside the overlap
    # band the two tiles' renditions are cross-faded (smoothly, no step); beyond one overlap
    # width from the band, pixels agree with the whole-image pass within 1/255.
    arr = f32(photo("astronaut", 180, 150, 24, 160))
    fn = ncnn_runner("realesrgan-x4plus", THREADS)
    tiles = tile_grid(160, 24, fit_tile(160, 128, 32), fit_tile(24, 128, 32), 32)
    assert [(t.x0, t.x1) for t in tiles] == [(0, 96), (64, 160)]
    whole = fn(arr)
    tiled = run_tiled(fn, arr, 4, tile=128, overlap=32)
    err = np.abs(tiled - whole).max(axis=2)
    far = np.r_[0 : 32 * 4, 128 * 4 : 160 * 4]  # ≥ 32 px from the band [64, 96)
    assert err[:, far].max() <= 1 / 255
    assert err.mean() <= 0.5 / 255
    # no seam: the tiled result's column-to-column steps at the band edges are no larger
    # than the whole-image pass's own steps there
    for edge in (64 * 4, 96 * 4):
        cols = slice(edge - 8, edge + 8)
        step_t = np.abs(np.diff(tiled[:, cols], axis=1)).mean()
        step_w = np.abs(np.diff(whole[:, cols], axis=1)).mean()
        assert step_t <= step_w * 1.1


def test_public_tile_option_changes_little():
    img = photo("chelsea", 100, 60, 40, 200)
    calls = []
    a = upscale(img, 2, upscaler="realesr-animevideov3-x2", tile=0, threads=THREADS)
    b = upscale(
        img,
        2,
        upscaler="realesr-animevideov3-x2",
        tile=128,
        threads=2,  # and a net per thread count gives the same result
        progress=lambda *args: calls.append(args),
    )
    assert a.size == b.size == (400, 80)
    diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
    assert diff.max() <= 1  # rounding only
    assert calls[0] == ("realesr-animevideov3-x2 ×2", 0, 2) and calls[-1][1:] == (2, 2)


# --- (c) any factor, exact sizes, alpha, every bundled model ---------------------------------


@pytest.mark.parametrize(
    "scale,expected", [(1.5, (18, 15)), (3, (36, 30)), (4, (48, 40)), (5, (60, 50)), (1, (12, 10))]
)
def test_any_factor_gives_exact_sizes(scale, expected):
    img = photo("coffee", 100, 200, 10, 12)
    out = upscale(img, scale, threads=THREADS)
    assert out.size == expected and out.mode == "RGB"
    if scale == 1:
        assert np.array_equal(np.asarray(out), np.asarray(img))


def test_exact_size_and_default_native_scale():
    img = photo("coffee", 100, 200, 10, 12)
    assert upscale(img, size=(37, 29), threads=THREADS).size == (37, 29)
    assert upscale(img, size=(6, 5), threads=THREADS).size == (6, 5)  # shrink: resample only
    assert upscale(img, threads=THREADS).size == (48, 40)
    assert upscale(img, size=(30, 30), upscaler="bicubic").size == (30, 30)


def test_passes_repeat_for_large_factors():
    img = photo("astronaut", 200, 200, 6, 8)
    labels = []
    out = upscale(
        img,
        16,
        upscaler="realesr-animevideov3-x4",
        threads=THREADS,
        progress=lambda label, done, total: labels.append(label),
    )
    assert out.size == (128, 96)
    assert {label for label in labels} == {
        "realesr-animevideov3-x4 ×4 pass 1/2",
        "realesr-animevideov3-x4 ×4 pass 2/2",
    }
    # ×5 with a ×4 model: two passes, the second on the shrunk first result, not a ×16
    seen = []
    out5 = upscale(
        img,
        5,
        upscaler="realesr-animevideov3-x4",
        threads=THREADS,
        progress=lambda label, done, total: seen.append(label),
    )
    assert out5.size == (40, 30) and len(set(seen)) == 2


def _disc_rgba(size: int = 24) -> Image.Image:
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)  # transparent pixels are black, as usual
    rgba[inside] = (230, 40, 30, 255)
    return Image.fromarray(rgba, "RGBA")


def test_alpha_is_upscaled_sharp_and_without_a_dark_halo():
    img = _disc_rgba()
    out = upscale(img, 2, threads=THREADS)
    assert out.mode == "RGBA" and out.size == (48, 48)
    alpha = np.asarray(out.getchannel("A"), np.float32) / 255
    ref = np.asarray(img.getchannel("A").resize((48, 48), Image.Resampling.LANCZOS)) / 255
    assert np.abs(alpha - ref).mean() < 0.05  # same shape as the input's alpha
    assert alpha[24, 24] == 1.0 and alpha[0, 0] == 0.0  # flat regions stay exact
    rgb = np.asarray(out.convert("RGB"), np.float32) / 255
    visible = alpha > 0.05
    # colour under visible alpha stays the disc's red: the black under alpha 0 did not bleed in
    assert rgb[visible, 0].min() > 0.6
    # opaque images stay without alpha; grey stays grey; LA keeps its alpha
    assert upscale(img.convert("RGB"), 2, threads=THREADS).mode == "RGB"
    assert upscale(img.convert("L"), 2, upscaler="lanczos").mode == "L"
    assert upscale(img.convert("LA"), 2, upscaler="lanczos").mode == "LA"


def test_alpha_with_resamplers_and_opaque_alpha():
    img = _disc_rgba()
    out = upscale(img, size=(30, 40), upscaler="bicubic")
    assert out.mode == "RGBA" and out.size == (30, 40)
    opaque = img.copy()
    opaque.putalpha(255)
    up = upscale(opaque, 2, upscaler="realesr-animevideov3-x2", threads=THREADS)
    assert up.mode == "RGBA" and np.asarray(up.getchannel("A")).min() == 255


@pytest.mark.parametrize(
    "name,factor",
    [
        ("realesrgan-x4plus-anime", 4),
        ("realesr-animevideov3-x2", 2),
        ("realesr-animevideov3-x3", 3),
        ("realesr-animevideov3-x4", 4),
        ("realesr-animevideov3", 4),
    ],
)
def test_every_bundled_model_runs(name, factor):
    img = photo("coffee", 150, 150, 16, 20)
    out = upscale(img, upscaler=name, threads=1)
    assert out.size == (20 * factor, 16 * factor)
    # same picture: shrunk back, it matches the input
    back = out.resize(img.size, Image.Resampling.BOX)
    assert peak_signal_noise_ratio(f32(img), f32(back), data_range=1.0) > 22
    assert np.asarray(out).std() > 10


# --- (d) errors: named, before any model loads ---------------------------------------------


def test_unknown_upscaler_lists_known_names():
    with pytest.raises(UnsupportedUpscalerError, match="unknown upscaler `esrgan-x8`") as err:
        upscale(photo("coffee", 0, 0, 8, 8), 2, upscaler="esrgan-x8")
    assert isinstance(err.value, SdenhanceError)
    assert "realesrgan-x4plus, realesrgan-x4plus-anime" in str(err.value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"scale": 0}, "`scale` must be a finite number > 0; got 0"),
        ({"scale": float("nan")}, "`scale` must be a finite number > 0"),
        ({"scale": 2, "size": (4, 4)}, "give `scale` or `size`, not both"),
        ({"size": (0, 4)}, r"`size` must be \(width, height\), two integers ≥ 1; got \(0, 4\)"),
        ({"size": (4.5, 4)}, "`size` must be"),
        ({"scale": 2, "tile": 8}, "`tile` must be 0 .* or an integer ≥ 16; got 8"),
        ({"scale": 2, "threads": 0}, "`threads` must be an integer ≥ 1; got 0"),
        ({"upscaler": "lanczos"}, "upscaler `lanczos` needs `scale` or `size`"),
    ],
)
def test_bad_arguments_are_user_errors_raised_before_loading(kwargs, match):
    before = _ncnn_net.cache_info().currsize
    with pytest.raises(SdenhanceError, match=match):
        upscale(photo("coffee", 0, 0, 8, 8), **{"upscaler": "realesrgan-x4plus-anime", **kwargs})
    assert _ncnn_net.cache_info().currsize == before


def test_model_files_need_spandrel_and_refuse_pickles(tmp_path, monkeypatch):
    img = photo("coffee", 0, 0, 8, 8)
    model = tmp_path / "4x_Foo.safetensors"
    model.write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, "spandrel", None)  # as if the extra were not installed
    with pytest.raises(SdenhanceError, match="needs spandrel") as err:
        upscale(img, 2, upscaler=str(model))
    assert EXTRA_HINT in str(err.value) == str(err.value)  # one line, naming the extra
    pickle = tmp_path / "4x_Foo.pth"
    pickle.write_bytes(b"\0" * 16)
    with pytest.raises(SdenhanceError, match="is a pickle.*allow_pickle"):
        upscale(img, 2, upscaler=str(pickle))
    with pytest.raises(SdenhanceError, match="does not exist"):
        upscale(img, 2, upscaler=str(tmp_path / "missing.safetensors"))
    with pytest.raises(UnsupportedUpscalerError, match="allowed: .safetensors, .pth"):
        upscale(img, 2, upscaler=str(tmp_path / "4x_Foo.onnx"))


def _fake_spandrel(calls: list) -> types.ModuleType:
    """A stand-in for spandrel's loader API wrapping a nearest-neighbour ×2 torch model."""
    import torch

    mod = types.ModuleType("spandrel")

    class UnsupportedModelError(Exception):
        pass

    class ModelTiling:
        SUPPORTED, DISCOURAGED, INTERNAL = 1, 2, 3

    class ImageModelDescriptor:
        scale, input_channels, output_channels = 2, 3, 3
        tiling = ModelTiling.SUPPORTED
        architecture = types.SimpleNamespace(name="Nearest")
        size_requirements = types.SimpleNamespace(minimum=4, multiple_of=4)
        device = torch.device("cpu")

        def __init__(self, state):
            self.state = state
            self.model = torch.nn.Upsample(scale_factor=2, mode="nearest")

        def eval(self):
            return self

        def to(self, device):
            return self

        def __call__(self, x):
            assert x.shape[-1] % 4 == 0 and x.shape[-2] % 4 == 0
            return self.model(x)

    class ModelLoader:
        def load_from_file(self, path):
            calls.append(("file", path))
            if "bad" in path:
                raise UnsupportedModelError(path)
            return ImageModelDescriptor({})

        def load_from_state_dict(self, state):
            calls.append(("state", sorted(state)))
            return ImageModelDescriptor(state)

    mod.UnsupportedModelError = UnsupportedModelError
    mod.ModelTiling = ModelTiling
    mod.ImageModelDescriptor = ImageModelDescriptor
    mod.ModelLoader = ModelLoader
    return mod


def test_spandrel_models_run_tiled_and_pickles_load_weights_only(tmp_path, monkeypatch):
    import torch

    calls: list = []
    monkeypatch.setitem(sys.modules, "spandrel", _fake_spandrel(calls))
    img = photo("astronaut", 50, 50, 30, 41)
    from safetensors.torch import save_file

    model = tmp_path / "2x_Nearest.safetensors"
    save_file({"conv.weight": torch.zeros(1)}, model)  # a real header: checked before spandrel
    out = upscale(img, upscaler=str(model), tile=16)  # tiles of ≤ 16 px, padded to × 4
    assert out.size == (82, 60)
    assert np.array_equal(
        np.asarray(out), np.asarray(img.resize((82, 60), Image.Resampling.NEAREST))
    )
    assert calls == [("state", ["conv.weight"])]  # read by safetensors, handed over as tensors
    pickle = tmp_path / "2x_Nearest.pth"
    torch.save({"conv.weight": torch.zeros(1)}, pickle)
    assert upscale(img, 2, upscaler=str(pickle), allow_pickle=True).size == (82, 60)
    assert calls[-1] == ("state", ["conv.weight"])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\0")  # a damaged file is named as such, before spandrel sees it
    with pytest.raises(SdenhanceError, match="corrupt or truncated"):
        upscale(img, 2, upscaler=str(bad))


# --- the resize stage -----------------------------------------------------------------------


def test_resize_stage_options_and_run():
    from sdenhance.api import build_options
    from sdenhance.stages import resize

    opts = build_options("resize", {})
    assert (opts.scale, opts.width, opts.height, opts.upscaler) == (2.0, None, None, "lanczos")
    with pytest.raises(SdenhanceError, match="`upscaler` must be one of lanczos, bicubic"):
        build_options("resize", {"upscaler": "nope"})
    with pytest.raises(SdenhanceError, match=r"`scale` must be > 0.0 and ≤ 64.0; got 0"):
        build_options("resize", {"scale": 0})
    img = photo("coffee", 100, 100, 30, 40)
    ctx = Context()
    assert resize.run(img, build_options("resize", {"scale": 0.5}), ctx).size == (20, 15)
    assert resize.run(img, build_options("resize", {"width": 20}), ctx).size == (20, 15)
    assert resize.run(img, build_options("resize", {"height": 60}), ctx).size == (80, 60)
    assert resize.run(img, build_options("resize", {"width": 7, "height": 9}), ctx).size == (7, 9)
    assert resize.run(img, build_options("resize", {"scale": 1}), ctx).size == (40, 30)
    out = resize.run(
        img, build_options("resize", {"upscaler": "realesr-animevideov3-x2", "scale": 3}), ctx
    )
    assert out.size == (120, 90)
    rgba = Enhancer().run("resize", _disc_rgba(), scale=1.5)
    assert rgba.mode == "RGBA" and rgba.size == (36, 36)
