"""The opt-in speed-ups: exact when off, fewer model rows or calls when on, seeded runs repeat,
shared models come back untouched, and the record re-runs them."""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sdenhance import Enhancer, SdenhanceError, testing
from sdenhance.cli import app
from sdenhance.diffusion.feature_cache import FeatureCache, shallow_controlnet
from sdenhance.diffusion.token_merging import merged_tokens
from sdenhance.stages import build_options

# four denoising steps (8 × 0.5) over a 192×160 canvas in 64-px tiles, three tiles a call
UPSCALE = dict(
    scale=2,
    creativity=0.5,
    steps=8,
    upscaler="lanczos",
    tile=64,
    overlap=16,
    tile_batch=3,
    vae_tile=128,
    prompt="a cat",
)
STEPS = 4
IMG2IMG = dict(strength=0.5, steps=8, prompt="a cat")


@pytest.fixture(scope="module")
def enhancer(models):
    return Enhancer(models["sd15"], controlnet=models["sd15-controlnet"])


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int16)


class Calls:
    """Calls and batch rows entering chosen modules, counted by forward pre-hooks."""

    def __init__(self, **modules: torch.nn.Module) -> None:
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.hooks = [m.register_forward_pre_hook(self._hook(n)) for n, m in modules.items()]

    def _hook(self, name: str):
        def hook(module, args):
            self.calls[name] += 1
            if args:
                self.rows[name] += args[0].shape[0]

        return hook

    def __enter__(self) -> Calls:
        return self

    def __exit__(self, *exc) -> None:
        for h in self.hooks:
            h.remove()


def counted(enh: Enhancer, **options):
    """The upscale of `photo`-like input with `options`, and the model calls it made."""
    engine = enh.engine
    unet, cn = engine.base.unet, engine.controlnet
    modules = dict(
        unet=unet,
        unet_mid=unet.mid_block,
        unet_last_up=unet.up_blocks[-1],
        controlnet=cn,
        controlnet_mid=cn.mid_block,
        controlnet_first=cn.down_blocks[0],
    )
    with Calls(**modules) as calls:
        out = enh.upscale(options.pop("image"), seed=4, **UPSCALE, **options)
    return out, calls


# ---------------------------------------------------------------------------------------------
# the tiled upscale


def test_exact_by_default_and_each_mode_changes_the_result(enhancer, photo):
    exact, calls = counted(enhancer, image=photo)
    groups = calls.calls["unet"] // STEPS
    assert groups >= 2
    tiles = calls.rows["unet"] // (2 * STEPS)  # CFG: two rows per tile and step
    assert tiles == enhancer.last_record["tiles"] > 1
    off = dict(control_cond_only=False, cfg_end=1.0, token_merging=0.0, cache_interval=1)
    same, _ = counted(enhancer, image=photo, **off)
    assert np.array_equal(pixels(exact), pixels(same))
    for mode in (
        {"control_cond_only": True},
        {"cfg_end": 0.5},
        {"token_merging": 0.5},
        {"cache_interval": 2},
    ):
        out, _ = counted(enhancer, image=photo, **mode)
        assert np.abs(pixels(out) - pixels(exact)).mean() > 0.01, mode


def test_control_cond_only_runs_the_controlnet_on_half_the_rows(enhancer, photo):
    _, exact = counted(enhancer, image=photo)
    _, fast = counted(enhancer, image=photo, control_cond_only=True)
    assert fast.rows["controlnet"] * 2 == exact.rows["controlnet"]
    assert fast.rows["unet"] == exact.rows["unet"]  # the UNet still sees both halves


def test_cfg_end_drops_the_unconditional_rows_after_its_fraction(enhancer, photo):
    _, exact = counted(enhancer, image=photo)
    _, fast = counted(enhancer, image=photo, cfg_end=0.5)  # two of four steps guided
    tiles = exact.rows["unet"] // (2 * STEPS)
    assert fast.rows["unet"] == tiles * (2 + 2 + 1 + 1)
    assert fast.rows["controlnet"] == fast.rows["unet"]
    assert fast.calls["unet"] == exact.calls["unet"]
    _, none = counted(enhancer, image=photo, cfg_end=0.0)
    assert none.rows["unet"] == tiles * STEPS


@pytest.mark.parametrize("interval,full_steps", [(2, 2), (3, 2), (4, 1)])
def test_cache_interval_runs_the_deep_blocks_every_n_steps(enhancer, photo, interval, full_steps):
    _, exact = counted(enhancer, image=photo)
    groups = exact.calls["unet"] // STEPS
    assert exact.calls["unet_mid"] == exact.calls["controlnet_mid"] == groups * STEPS
    _, fast = counted(enhancer, image=photo, cache_interval=interval)
    assert fast.calls["unet_mid"] == fast.calls["controlnet_mid"] == groups * full_steps
    assert fast.calls["unet"] == groups * full_steps  # the whole forward on full steps only
    # the shallow blocks run every step
    assert fast.calls["unet_last_up"] == fast.calls["controlnet_first"] == groups * STEPS


def test_modes_combine_and_seeded_runs_repeat(enhancer, photo):
    modes = dict(control_cond_only=True, cfg_end=0.5, token_merging=0.5, cache_interval=2)
    a, calls = counted(enhancer, image=photo, **modes)
    b, _ = counted(enhancer, image=photo, **modes)
    assert np.array_equal(pixels(a), pixels(b))
    c = enhancer.upscale(photo, seed=5, **UPSCALE, **modes)
    assert not np.array_equal(pixels(a), pixels(c))
    groups = calls.calls["unet_last_up"] // STEPS
    assert calls.calls["unet_mid"] == groups * 2


def test_token_merging_leaves_the_shared_unet_as_it_found_it(models, enhancer, photo):
    merged = enhancer.upscale(photo, seed=4, **UPSCALE, token_merging=0.6)
    unet = enhancer.engine.base.unet
    assert not any(type(m).__name__ == "ToMeBlock" for m in unet.modules())
    assert not any(hasattr(m, "_tome_info") for m in unet.modules())
    after = enhancer.upscale(photo, seed=4, **UPSCALE)
    fresh = Enhancer(models["sd15"], controlnet=models["sd15-controlnet"])
    assert np.array_equal(pixels(after), pixels(fresh.upscale(photo, seed=4, **UPSCALE)))
    assert not np.array_equal(pixels(after), pixels(merged))


def test_shallow_path_computes_what_the_whole_forward_computes():
    """At the step its features were kept, the shallow path gives the UNet's own output: the
    blocks it skips are exactly those the kept features stand for."""
    torch.manual_seed(0)
    for family in ("sd15", "sdxl"):
        unet = testing.build_components(family)["unet"]
        cn = testing.build_controlnet(family)
        x, hint = torch.randn(2, 4, 16, 16), torch.rand(2, 3, 128, 128)
        text = torch.randn(2, 77, unet.config.cross_attention_dim)
        kw: dict = {"encoder_hidden_states": text}
        if family == "sdxl":
            ids = torch.tensor([[128.0, 128, 0, 0, 128, 128]] * 2)
            kw["added_cond_kwargs"] = {"text_embeds": torch.randn(2, 32), "time_ids": ids}
        cache = FeatureCache(unet, 2)
        with torch.no_grad():
            cn_kw = dict(controlnet_cond=hint, conditioning_scale=0.6, return_dict=False)
            down, mid = cn(x, 300, **cn_kw, **kw)
            full = cache.full(
                "k",
                x,
                300,
                return_dict=False,
                down_block_additional_residuals=down,
                mid_block_additional_residual=mid,
                **kw,
            )[0]
            added = kw.get("added_cond_kwargs")
            skips = shallow_controlnet(cn, x, 300, text, hint, 0.6, cache.skips, added)
            assert all(torch.equal(a, b) for a, b in zip(skips, down[: cache.skips], strict=True))
            cache.start_step(1)
            assert cache.shallow("k", 2) and not cache.shallow("other", 2)
            again = cache.run_shallow("k", x, 300, skip_residuals=skips, **kw)
        assert torch.equal(again, full), family
        cache.start_step(2)
        assert not cache.shallow("k", 2)  # a full step again


def test_shallow_path_places_offloaded_models_first():
    """`--offload model` moves a model to the device in a hook of its `forward`, which the
    shallow path never calls: it runs the hook itself."""
    unet = testing.build_components("sd15")["unet"]
    cn = testing.build_controlnet("sd15")
    seen = []

    class Hook:
        def pre_forward(self, module, *args):
            seen.append(type(module).__name__)
            return args, {}

    unet._hf_hook, cn._hf_hook = Hook(), Hook()
    x, text, hint = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 32), torch.rand(1, 3, 64, 64)
    cache = FeatureCache(unet, 2)
    with torch.no_grad():
        cache.full("k", x, 10, encoder_hidden_states=text)
        seen.clear()
        skips = shallow_controlnet(cn, x, 10, text, hint, 1.0, cache.skips)
        cache.start_step(1)
        cache.run_shallow("k", x, 10, encoder_hidden_states=text, skip_residuals=skips)
    assert seen == ["ControlNetModel", "UNet2DConditionModel"]


# ---------------------------------------------------------------------------------------------
# img2img through the diffusers pipeline


def counted_img2img(enh: Enhancer, image, **options):
    unet = enh.engine.img2img().unet
    with Calls(unet=unet, unet_mid=unet.mid_block) as calls:
        out = enh.img2img(image, seed=2, **IMG2IMG, **options)
    assert "forward" not in vars(unet)  # the swapped forward is gone
    return out, calls


def test_img2img_modes(enhancer, photo):
    exact, calls = counted_img2img(enhancer, photo)
    assert calls.calls["unet"] == STEPS and calls.rows["unet"] == 2 * STEPS
    same, _ = counted_img2img(enhancer, photo, cfg_end=1.0, cache_interval=1, token_merging=0)
    assert np.array_equal(pixels(exact), pixels(same))
    half, calls = counted_img2img(enhancer, photo, cfg_end=0.5)
    assert calls.rows["unet"] == 2 + 2 + 1 + 1
    cached, calls = counted_img2img(enhancer, photo, cache_interval=2)
    assert calls.calls["unet"] == STEPS and calls.calls["unet_mid"] == 2
    merged, _ = counted_img2img(enhancer, photo, token_merging=0.5)
    again, _ = counted_img2img(enhancer, photo, token_merging=0.5)
    assert np.array_equal(pixels(merged), pixels(again))
    for out in (half, cached, merged):
        assert np.abs(pixels(out) - pixels(exact)).mean() > 0.01
    after, _ = counted_img2img(enhancer, photo)
    assert np.array_equal(pixels(exact), pixels(after))


def test_img2img_cfg_end_on_sdxl(models, photo):
    enh = Enhancer(models["sdxl"])
    exact = enh.img2img(photo, seed=2, **IMG2IMG)
    fast = enh.img2img(photo, seed=2, **IMG2IMG, cfg_end=0.5, cache_interval=2)
    assert fast.size == exact.size
    assert np.abs(pixels(fast) - pixels(exact)).mean() > 0.01


# ---------------------------------------------------------------------------------------------
# options, the `fast` preset, records


def test_fast_fills_in_what_was_not_given():
    plain = build_options("upscale", {})
    fast = build_options("upscale", {"fast": True})
    assert fast.speedups() != plain.speedups() and plain.speedups().exact
    mine = build_options("upscale", {"fast": True, "cfg_end": 1.0, "cache_interval": 1})
    assert mine.cfg_end == 1.0 and mine.cache_interval == 1
    assert build_options("img2img", {"fast": True}).speedups() != plain.speedups()


def test_recipes_and_presets_take_fast(tmp_path):
    from sdenhance.presets import load_preset
    from sdenhance.recipes import Recipe, Step

    steps = Recipe("r", (Step("upscale", {"fast": True, "cfg_end": 0.6}),)).validate()
    opts = steps[0].options
    preset = build_options("upscale", {"fast": True})
    assert opts.cfg_end == 0.6 and opts.cache_interval == preset.cache_interval > 1
    file = tmp_path / "quick.toml"
    file.write_text('prompt = "a cat"\nfast = true\n')
    defaults = load_preset(str(file)).defaults("upscale")
    assert build_options("upscale", defaults).speedups() == preset.speedups()


def test_token_merging_without_tomesd_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tomesd", None)  # import now fails
    with pytest.raises(SdenhanceError, match=r"sdenhance\[fast\]"):
        build_options("upscale", {"token_merging": 0.5})
    with pytest.raises(SdenhanceError, match=r"sdenhance\[fast\]"):
        with merged_tokens(torch.nn.Linear(1, 1), 0.5):
            pass
    build_options("upscale", {"token_merging": 0})  # off: no package needed


def test_fast_run_is_recorded_and_reruns_bit_for_bit(models, photo, tmp_path):
    from sdenhance.io.load import read_metadata

    src = tmp_path / "cat.png"
    photo.save(src)
    made = tmp_path / "fast.png"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in UPSCALE.items()]
    runner = CliRunner()
    args = [
        "upscale",
        str(src),
        "--model",
        models["sd15"],
        "--controlnet",
        models["sd15-controlnet"],
    ]
    result = runner.invoke(
        app, [*args, *flags, "--fast", "--token-merging", "0.5", "--seed", "3", "-o", str(made)]
    )
    assert result.exit_code == 0, result.output
    meta = read_metadata(made)
    options = meta.sdenhance["steps"][0]["options"]
    assert options["fast"] is True and options["token_merging"] == 0.5
    fast = build_options("upscale", {"fast": True})
    assert (options["cfg_end"], options["cache_interval"]) == (fast.cfg_end, fast.cache_interval)
    infotext = meta.parameters  # the A1111 fields name every mode too
    assert infotext["Token merging"] == "0.5" and infotext["Fast"] == "True"
    assert infotext["Cache interval"] == str(fast.cache_interval)
    again = tmp_path / "again.png"
    rerun = runner.invoke(app, ["run", "--from", str(made), str(src), "-o", str(again)])
    assert rerun.exit_code == 0, rerun.output
    assert np.array_equal(np.asarray(Image.open(made)), np.asarray(Image.open(again)))
