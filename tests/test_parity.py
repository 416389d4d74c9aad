"""Parity with diffusers: where our loop replaces a pipeline, it computes the same thing.

For every sampler offered and both families, a one-tile upscale's latents are compared with
diffusers' ControlNet img2img pipeline (or, with `--controlnet none`, the plain img2img
pipeline) given the same initial latents (as `image`), seed, strength, steps, guidance and
conditioning scale. Inpainting with `area="whole"` is compared with diffusers' inpainting
pipeline inside the mask. Tiny random models, 64×64, a few steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from sdenhance import Enhancer
from sdenhance.models.schedulers import SCHEDULERS
from sdenhance.stages import tile_upscale as tu

FAMILIES = ("sd15", "sdxl")
SEED = 7
UPSCALE = dict(
    scale=2,
    creativity=0.5,
    steps=4,
    guidance=6.0,
    resemblance=0.7,
    upscaler="lanczos",
    tile=64,
    overlap=16,
    color_fix="none",
    prompt="a photo of a cat",
    negative_prompt="blurry",
)


@pytest.fixture(scope="module")
def enhancers(models):
    """Per family: an enhancer with the tile ControlNet and one with `controlnet="none"`."""
    out = {}
    for family in FAMILIES:
        out[family] = Enhancer(models[family], controlnet=models[f"{family}-controlnet"])
        out[f"{family}-none"] = Enhancer(models[family], controlnet="none")
    return out


@pytest.fixture(scope="module")
def small_input():
    """32×32 with real structure, so a 2× upscale is one 64×64 tile."""
    photo = Image.fromarray(data.chelsea())
    return photo.crop((120, 60, 184, 124)).resize((32, 32), Image.Resampling.LANCZOS)


def upscale_latents(enh: Enhancer, image: Image.Image, monkeypatch, **options):
    """Run the upscale stage; return (control canvas, initial latents, final latents)."""
    seen: dict[str, object] = {}
    encode, decode = tu.vae_encode, tu.vae_decode

    def spy_encode(vae, canvas, **kw):
        seen["canvas"] = canvas.copy()
        seen["init"] = encode(vae, canvas, **kw)
        return seen["init"].clone()

    def spy_decode(vae, latents, **kw):
        seen["latents"] = latents.clone()
        return decode(vae, latents, **kw)

    monkeypatch.setattr(tu, "vae_encode", spy_encode)
    monkeypatch.setattr(tu, "vae_decode", spy_decode)
    enh.upscale(image, seed=SEED, **options)
    assert enh.last_record["tiles"] == 1
    return seen["canvas"], seen["init"], seen["latents"]


def pipeline_args(options: dict, init: torch.Tensor) -> dict:
    return dict(
        prompt=options["prompt"],
        negative_prompt=options["negative_prompt"],
        image=init,
        strength=options["creativity"],
        num_inference_steps=options["steps"],
        guidance_scale=options["guidance"],
        generator=torch.Generator("cpu").manual_seed(SEED),
        output_type="latent",
    )


def assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Bit-identical: both sides run the same float32 operations in the same order."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    diff = (ours - theirs).abs().max().item()
    assert torch.equal(ours, theirs), f"max |difference| {diff:g}"


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("family", FAMILIES)
def test_one_tile_upscale_equals_controlnet_img2img(
    enhancers, small_input, monkeypatch, family, scheduler
):
    enh = enhancers[family]
    options = {**UPSCALE, "scheduler": scheduler}
    canvas, init, ours = upscale_latents(enh, small_input, monkeypatch, **options)
    pipe = enh.engine.controlnet_img2img(scheduler)
    control = torch.from_numpy(canvas.transpose(2, 0, 1).copy())[None]
    theirs = pipe(
        **pipeline_args(options, init),
        control_image=control,
        controlnet_conditioning_scale=options["resemblance"],
    ).images
    assert not torch.equal(ours, init)  # the loop did denoise
    assert_same(ours, theirs)


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("family", FAMILIES)
def test_one_tile_upscale_without_controlnet_equals_img2img(
    enhancers, small_input, monkeypatch, family, scheduler
):
    enh = enhancers[f"{family}-none"]
    options = {**UPSCALE, "scheduler": scheduler}
    options.pop("resemblance")
    _, init, ours = upscale_latents(enh, small_input, monkeypatch, **options)
    theirs = enh.engine.img2img(scheduler)(**pipeline_args(options, init)).images
    assert_same(ours, theirs)
    assert enh.last_record["models"]["controlnet"] == "none"


@pytest.mark.parametrize("scheduler", ["euler-a", "dpmpp-2m-sde-karras", "unipc"])
@pytest.mark.parametrize("family", FAMILIES)
def test_half_precision_latents_round_as_the_pipeline_rounds(
    models, small_input, monkeypatch, family, scheduler
):
    """In bf16 the pipeline keeps its latents in the model's dtype between steps; so do we."""
    enh = Enhancer(models[family], controlnet=models[f"{family}-controlnet"], dtype="bf16")
    options = {**UPSCALE, "scheduler": scheduler}
    canvas, init, ours = upscale_latents(enh, small_input, monkeypatch, **options)
    assert ours.dtype == torch.bfloat16
    control = torch.from_numpy(canvas.transpose(2, 0, 1).copy())[None]
    theirs = enh.engine.controlnet_img2img(scheduler)(
        **pipeline_args(options, init),
        control_image=control,
        controlnet_conditioning_scale=options["resemblance"],
    ).images
    assert_same(ours, theirs)


def test_the_controlnet_changes_the_result(enhancers, small_input, monkeypatch):
    """Control for the two tests above: with and without the ControlNet differ, so each
    comparison is with the right pipeline."""
    options = {**UPSCALE, "scheduler": "euler"}
    _, _, with_cn = upscale_latents(enhancers["sd15"], small_input, monkeypatch, **options)
    options.pop("resemblance")
    _, _, without = upscale_latents(enhancers["sd15-none"], small_input, monkeypatch, **options)
    assert not torch.allclose(with_cn, without, atol=1e-4)


def test_sdxl_time_ids_describe_each_tile(enhancers, small_input, monkeypatch):
    """Two tiles of another size than the canvas: each gets its own size as SDXL time ids."""
    seen = []
    unet = enhancers["sdxl"].engine.base.unet
    real = unet.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["added_cond_kwargs"]["time_ids"].clone())
        return real(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", spy)
    enhancers["sdxl"].upscale(
        small_input, seed=SEED, **{**UPSCALE, "scale": 3, "tile": 64, "overlap": 32}
    )
    tiles = enhancers["sdxl"].last_record["tiles"]
    assert tiles == 4 and seen
    for ids in seen:
        h, w = ids[0, 0].item(), ids[0, 1].item()
        assert (h, w) != (96, 96) and h % 8 == 0 and w % 8 == 0  # the tile's, not the canvas's
        assert torch.equal(ids, torch.tensor([[h, w, 0, 0, h, w]] * len(ids)).to(ids))


# ---------------------------------------------------------------------------------------------
# inpainting: our stage around diffusers' inpainting pipeline


@pytest.mark.parametrize("scheduler", ["dpmpp-2m-karras", "euler-a", "unipc"])
@pytest.mark.parametrize("family", FAMILIES)
def test_whole_image_inpaint_equals_the_pipeline_inside_the_mask(models, family, scheduler):
    image = Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 24:48] = 255  # whole 8×8 latent cells, so the cover changes nothing
    enh = Enhancer(models[family])
    options = dict(
        prompt="a red flower",
        negative_prompt="blurry",
        strength=0.8,
        steps=4,
        guidance=5.0,
        scheduler=scheduler,
        grow=0,
        feather=0,
        area="whole",
        fill="original",
        color_match=False,
    )
    ours = np.asarray(enh.inpaint(image, Image.fromarray(mask), seed=SEED, **options))
    pipe = enh.engine.inpaint(scheduler)
    theirs = pipe(
        prompt=options["prompt"],
        negative_prompt=options["negative_prompt"],
        image=image,
        mask_image=Image.fromarray(mask),
        strength=options["strength"],
        num_inference_steps=options["steps"],
        guidance_scale=options["guidance"],
        generator=torch.Generator("cpu").manual_seed(SEED),
        height=64,
        width=64,
    ).images[0]
    theirs = np.asarray(theirs.convert("RGB"))
    inside = mask > 0
    assert np.array_equal(ours[inside], theirs[inside])
    assert np.array_equal(ours[~inside], np.asarray(image)[~inside])  # the exact composite
    assert not np.array_equal(ours[inside], np.asarray(image)[inside])


# ---------------------------------------------------------------------------------------------
# the CLI: every sampler its help offers runs


def help_samplers() -> list[str]:
    """The names `upscale --scheduler`'s help lists ("... One of a, b, c. Default: a.")."""
    import typer

    from sdenhance.cli import app

    command = typer.main.get_command(app).commands["upscale"]
    text = next(p.help for p in command.params if p.name == "scheduler")
    names = text.split("One of ", 1)[1].split(".", 1)[0]
    return [n.strip() for n in names.split(",")]


def test_the_help_lists_every_sampler():
    assert help_samplers() == list(SCHEDULERS)


@pytest.mark.parametrize("scheduler", help_samplers())
def test_cli_upscale_runs_every_sampler_in_its_help(models, tmp_path, small_input, scheduler):
    from typer.testing import CliRunner

    from sdenhance.cli import app

    src = tmp_path / "in.png"
    small_input.save(src)
    args = ["upscale", str(src), "--model", models["sd15"], "--controlnet"]
    args += [models["sd15-controlnet"], "--scheduler", scheduler, "--steps", "2"]
    args += ["--creativity", "0.5", "--upscaler", "lanczos", "--tile", "64", "--overlap", "16"]
    result = CliRunner().invoke(app, [*args, "--seed", "1", "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (64, 64)
