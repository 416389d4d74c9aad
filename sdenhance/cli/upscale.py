"""`sdenhance upscale`: generative tiled upscaling (the main job)."""

from __future__ import annotations

from typing import Any

import typer

from sdenhance.cli import common as c
from sdenhance.io.formats import SaveOptions
from sdenhance.models.config import EngineConfig
from sdenhance.stages import build_options, preflight
from sdenhance.stages.tile_upscale import refuse_resemblance

app = typer.Typer()


@app.command("upscale")
@c.engine_options("model", "controlnet")
@c.stage_options("upscale")
@c.output_options
def upscale(
    inputs: c.Inputs,
    preset: c.Preset = None,
    seed: c.Seed = None,
    no_input_prompt: c.NoInputPrompt = False,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    engine: EngineConfig | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Upscale images: Real-ESRGAN pre-upscale, then seam-free ControlNet-tile diffusion in tiles.

    `--creativity 0` runs Real-ESRGAN alone, fully offline. `--controlnet none` upscales with
    the model alone (tile img2img, no ControlNet).
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    given = values or {}
    if "resemblance" in given:
        refuse_resemblance(engine)
    opts = build_options("upscale", c.with_preset(preset, given, "upscale"))
    c.warn_unused("upscale", opts, given)
    use_prompt = "prompt" not in given and not no_input_prompt
    label = (
        f"x{opts.scale:g}"
        if not (opts.width or opts.height)
        else f"{opts.width or ''}x{opts.height or ''}"
    )
    c.process_images(
        inputs,
        output,
        "upscale",
        c.stage_work("upscale", opts, input_prompt=use_prompt),
        overwrite=overwrite,
        engine=engine,
        seed=seed,
        fields={"scale": label},
        saving=saving,
        check=lambda ctx, inputs: preflight("upscale", opts, ctx),
    )
