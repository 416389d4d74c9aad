"""`sdenhance img2img`: refine images at a chosen strength with a prompt."""

from __future__ import annotations

from typing import Annotated

import typer

from ..api import apply_stage, build_options, join_alpha
from . import common as c

app = typer.Typer()


@app.command("img2img")
def img2img(
    inputs: c.Inputs,
    strength: Annotated[float | None, typer.Option("--strength", "-s", help="How much to change, 0–1: 0 keeps the image, 1 repaints it.", rich_help_panel=c.P_DIFF)] = None,
    preset: c.Preset = None,
    prompt: c.Prompt = None,
    negative_prompt: c.NegativePrompt = None,
    no_input_prompt: c.NoInputPrompt = False,
    steps: c.Steps = None,
    guidance: c.Guidance = None,
    seed: c.Seed = None,
    scheduler: c.Scheduler = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    model: c.Model = None,
    model_config: c.ModelConfig = None,
    allow_pickle: c.AllowPickle = False,
    device: c.Device = "auto",
    dtype: c.Dtype = "auto",
    offload: c.Offload = "none",
    vae_tiling: c.VaeTiling = False,
    attention_slicing: c.AttentionSlicing = False,
    verbose: c.Verbose = False,
) -> None:
    """Refine images with Stable Diffusion img2img at a chosen strength."""
    c.setup_logging(verbose)
    c.check_seed(seed)
    values = c.drop_none(prompt=prompt, negative_prompt=negative_prompt, strength=strength, steps=steps, guidance=guidance, scheduler=scheduler)
    opts = build_options("img2img", c.with_preset(preset, values, "img2img"))
    engine = c.engine_config(model=model, model_config=model_config, device=device, dtype=dtype, offload=offload,
                             vae_tiling=vae_tiling, attention_slicing=attention_slicing, allow_pickle=allow_pickle)

    def work(item, ctx):
        from ..image import load_image

        loaded = load_image(item.input)
        item_opts = c.use_input_prompt(loaded, opts, ctx, enabled=prompt is None and not no_input_prompt)
        return apply_stage("img2img", join_alpha(loaded.image, loaded.alpha), item_opts, ctx), {}

    c.process_images(inputs, output, "img2img", work, overwrite=overwrite, engine=engine, seed=seed)
