"""`sdenhance img2img`: refine images at a chosen strength."""

from __future__ import annotations

from typing import Any

import typer

from sdenhance.cli import common as c
from sdenhance.io.formats import SaveOptions
from sdenhance.models.config import EngineConfig
from sdenhance.stages import build_options

app = typer.Typer()


@app.command("img2img")
@c.engine_options("model")
@c.stage_options("img2img")
@c.output_options
def img2img(
    inputs: c.Inputs,
    preset: c.Preset = None,
    no_input_prompt: c.NoInputPrompt = False,
    seed: c.Seed = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    engine: EngineConfig | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Refine images with Stable Diffusion img2img at a chosen strength."""
    c.setup_logging(verbose)
    c.check_seed(seed)
    given = values or {}
    opts = build_options("img2img", c.with_preset(preset, given, "img2img"))
    use_prompt = "prompt" not in given and not no_input_prompt
    work = c.stage_work("img2img", opts, input_prompt=use_prompt)
    c.process_images(
        inputs,
        output,
        "img2img",
        work,
        overwrite=overwrite,
        engine=engine,
        seed=seed,
        saving=saving,
    )
