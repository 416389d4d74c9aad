"""`sdenhance img2img`: refine images at a chosen strength with a prompt."""

from __future__ import annotations

from typing import Annotated

import typer

from sdenhance.api import apply_stage, build_options, join_alpha
from sdenhance.cli import common as c
from sdenhance.models.config import EngineConfig

app = typer.Typer()


@app.command("img2img")
@c.engine_options("model")
def img2img(
    inputs: c.Inputs,
    strength: Annotated[
        float | None,
        typer.Option(
            "--strength",
            "-s",
            help="How much to change, 0–1: 0 keeps the image, 1 repaints it.",
            rich_help_panel=c.P_DIFF,
        ),
    ] = None,
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
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
) -> None:
    """Refine images with Stable Diffusion img2img at a chosen strength."""
    c.setup_logging(verbose)
    c.check_seed(seed)
    values = c.drop_none(
        prompt=prompt,
        negative_prompt=negative_prompt,
        strength=strength,
        steps=steps,
        guidance=guidance,
        scheduler=scheduler,
    )
    opts = build_options("img2img", c.with_preset(preset, values, "img2img"))

    def work(item, ctx):
        from sdenhance.io.load import load_image

        loaded = load_image(item.input, metadata=prompt is None and not no_input_prompt)
        item_opts = c.use_input_prompt(
            loaded, opts, ctx, enabled=prompt is None and not no_input_prompt
        )
        return apply_stage("img2img", join_alpha(loaded.image, loaded.alpha), item_opts, ctx), {}

    c.process_images(inputs, output, "img2img", work, overwrite=overwrite, engine=engine, seed=seed)
