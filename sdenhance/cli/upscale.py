"""`sdenhance upscale`: generative tiled upscaling (the main job)."""

from __future__ import annotations

from typing import Annotated

import typer

from sdenhance.api import apply_stage, build_options, join_alpha
from sdenhance.cli import common as c
from sdenhance.models.config import EngineConfig

app = typer.Typer()


@app.command("upscale")
@c.engine_options("model", "controlnet")
def upscale(
    inputs: c.Inputs,
    scale: Annotated[
        float | None,
        typer.Option(
            "--scale",
            help="Upscale factor ≥ 1 (default 2); ignored with --width/--height.",
            rich_help_panel="Size",
        ),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(
            "--width",
            help="Exact output width in px; the height keeps the aspect unless given.",
            rich_help_panel="Size",
        ),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option(
            "--height",
            help="Exact output height in px; the width keeps the aspect unless given.",
            rich_help_panel="Size",
        ),
    ] = None,
    preset: c.Preset = None,
    prompt: c.Prompt = None,
    negative_prompt: c.NegativePrompt = None,
    creativity: Annotated[
        float | None,
        typer.Option(
            "--creativity",
            help="Denoising strength 0–1: 0 = Real-ESRGAN only (offline); portraits 0.2–0.4, landscapes 0.5–0.7. Default 0.35.",
            rich_help_panel=c.P_DIFF,
        ),
    ] = None,
    resemblance: Annotated[
        float | None,
        typer.Option(
            "--resemblance",
            help="ControlNet-tile strength 0–2: higher stays closer to the input. Default 0.6.",
            rich_help_panel=c.P_DIFF,
        ),
    ] = None,
    steps: c.Steps = None,
    guidance: c.Guidance = None,
    seed: c.Seed = None,
    scheduler: c.Scheduler = None,
    upscaler: Annotated[
        str | None,
        typer.Option(
            "--upscaler",
            help="Pre-upscaler: realesrgan-x4plus (default), realesrgan-x4plus-anime, realesr-animevideov3-x2/x3/x4, lanczos, bicubic, or a .pth/.safetensors path (needs sdenhance[upscalers]).",
            rich_help_panel=c.P_DIFF,
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(
            "--tile",
            help="Largest diffusion tile in px, a multiple of 8, ≥ 64. Default: the model's native size (512 SD 1.5, 1024 SDXL).",
            rich_help_panel=c.P_TILE,
        ),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(
            "--overlap",
            help="Minimum tile overlap in px, a multiple of 8, below --tile. Default 64.",
            rich_help_panel=c.P_TILE,
        ),
    ] = None,
    tile_batch: Annotated[
        int | None,
        typer.Option(
            "--tile-batch",
            help="Tiles per model call, 1–64 (faster on GPUs, more memory). Default 4.",
            rich_help_panel=c.P_TILE,
        ),
    ] = None,
    vae_tile: Annotated[
        int | None,
        typer.Option(
            "--vae-tile",
            help="VAE tile in px, a multiple of 64, ≥ 128 (smaller: less memory). Default 512.",
            rich_help_panel=c.P_TILE,
        ),
    ] = None,
    color_fix: Annotated[
        str | None,
        typer.Option(
            "--color-fix",
            help="Colour fix against the pre-upscale: wavelet (default), lab, hist, adain or none.",
            rich_help_panel=c.P_COLOUR,
        ),
    ] = None,
    blend: Annotated[
        float | None,
        typer.Option(
            "--blend",
            help="Opacity 0–1 of the generated result over the pre-upscale; lower keeps more original texture. Default 1.",
            rich_help_panel=c.P_COLOUR,
        ),
    ] = None,
    no_input_prompt: c.NoInputPrompt = False,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
) -> None:
    """Upscale images: Real-ESRGAN pre-upscale, then seam-free ControlNet-tile diffusion in tiles.

    `--creativity 0` runs Real-ESRGAN alone, fully offline.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    values = c.drop_none(
        scale=scale,
        width=width,
        height=height,
        prompt=prompt,
        negative_prompt=negative_prompt,
        creativity=creativity,
        resemblance=resemblance,
        steps=steps,
        guidance=guidance,
        scheduler=scheduler,
        upscaler=upscaler,
        tile=tile,
        overlap=overlap,
        tile_batch=tile_batch,
        vae_tile=vae_tile,
        color_fix=color_fix,
        blend=blend,
    )
    values = c.with_preset(preset, values, "upscale")
    opts = build_options("upscale", values)

    def work(item, ctx):
        from sdenhance.io.load import load_image

        loaded = load_image(item.input, metadata=prompt is None and not no_input_prompt)
        item_opts = c.use_input_prompt(
            loaded, opts, ctx, enabled=prompt is None and not no_input_prompt
        )
        return apply_stage("upscale", join_alpha(loaded.image, loaded.alpha), item_opts, ctx), {}

    label = (
        f"x{opts.scale:g}"
        if not (opts.width or opts.height)
        else f"{opts.width or ''}x{opts.height or ''}"
    )
    c.process_images(
        inputs,
        output,
        "upscale",
        work,
        overwrite=overwrite,
        engine=engine,
        seed=seed,
        fields={"scale": label},
    )
