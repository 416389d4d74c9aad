"""`sdenhance remove` (and `inpaint`): change the masked part of an image, keep the rest exact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from PIL import Image

from sdenhance.api import apply_stage, build_options, join_alpha
from sdenhance.cli import common as c
from sdenhance.errors import SdenhanceError
from sdenhance.models.config import EngineConfig
from sdenhance.stages import Context

app = typer.Typer()

MaskSource = Annotated[
    str,
    typer.Option(
        "--mask",
        help="Mask image, white (≥ 50 %) = the object; any mode, same size as the input (or "
        "--mask-resize). `alpha`: the input's transparent pixels are the object (output is opaque).",
        rich_help_panel=c.P_MASK,
        show_default=False,
    ),
]
InpaintMask = Annotated[
    str,
    typer.Option(
        "--mask",
        help="Mask image, white (≥ 50 %) = repaint; any mode, same size as the input (or "
        "--mask-resize). `alpha`: the input's transparent pixels are repainted (output is opaque).",
        rich_help_panel=c.P_MASK,
        show_default=False,
    ),
]
MaskResize = Annotated[
    bool,
    typer.Option(
        "--mask-resize",
        help="Stretch a mask of another size to the input (nearest neighbour) instead of refusing it.",
        rich_help_panel=c.P_MASK,
    ),
]


def _load_mask(spec: str) -> Image.Image | None:
    """The mask file as an image, or None for `alpha` (taken from each input)."""
    if spec == "alpha":
        return None
    if not Path(spec).is_file():
        raise SdenhanceError(f"`--mask`: no such file {spec!r}; give a mask image or `alpha`")
    from sdenhance.io.load import load_image

    loaded = load_image(spec, metadata=False)
    return join_alpha(loaded.image, loaded.alpha)


def _masked_input(path: Path, mask_image: Image.Image | None, ctx: Context) -> Image.Image:
    """The input image, with its mask put in `ctx.images["mask"]`.

    With `--mask alpha` (mask_image None) the transparent pixels are the mask and the output is
    opaque: the alpha described what to change, not a transparency to keep.
    """
    from sdenhance.io.load import load_image
    from sdenhance.ops.masks import mask_from_alpha

    loaded = load_image(path, metadata=False)
    image, alpha = loaded.image, loaded.alpha
    if mask_image is None:
        if alpha is None:
            raise SdenhanceError(
                f"`--mask alpha`: {path} has no transparency; give a mask image instead"
            )
        ctx.images["mask"] = Image.fromarray((mask_from_alpha(alpha) * 255).astype("uint8"), "L")
        alpha = None
    else:
        ctx.images["mask"] = mask_image
    return join_alpha(image, alpha)


@app.command("remove")
@c.engine_options("model", "inpaint_model")
def remove(
    inputs: c.Inputs,
    mask: MaskSource,
    mask_resize: MaskResize = False,
    grow: Annotated[
        int | None,
        typer.Option(
            "--grow",
            help="Grow the mask by PX, 0–256 (default 8), to take the object's soft edge and shadow too.",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="Offline fill: telea (default; smooth) or ns (Navier-Stokes; carries edges in).",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    radius: Annotated[
        int | None,
        typer.Option(
            "--radius",
            help="Neighbourhood in px each filled pixel is estimated from, 1–64 (default 5).",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    refine: Annotated[
        bool,
        typer.Option(
            "--refine/--no-refine",
            help="Repaint the fill at low strength with the inpaint model for real texture (loads a model); --no-refine is fully offline.",
            rich_help_panel=c.P_DIFF,
        ),
    ] = True,
    strength: Annotated[
        float | None,
        typer.Option(
            "--strength",
            "-s",
            help="Refinement strength in (0, 1] (default 0.35): higher invents more.",
            rich_help_panel=c.P_DIFF,
        ),
    ] = None,
    prompt: c.Prompt = None,
    negative_prompt: c.NegativePrompt = None,
    steps: c.Steps = None,
    guidance: c.Guidance = None,
    seed: c.Seed = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
) -> None:
    """Remove the masked object: fill it from its surroundings (OpenCV), then optionally refine.

    Pixels outside the grown mask stay bit-identical. Model options apply only with --refine.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    opts = build_options(
        "remove",
        c.drop_none(
            method=method,
            radius=radius,
            grow=grow,
            mask_resize=mask_resize,
            refine=refine,
            refine_strength=strength,
            prompt=prompt,
            negative_prompt=negative_prompt,
            steps=steps,
            guidance=guidance,
        ),
    )
    mask_image = _load_mask(mask)

    def work(item, ctx):
        return apply_stage("remove", _masked_input(item.input, mask_image, ctx), opts, ctx), {}

    c.process_images(inputs, output, "remove", work, overwrite=overwrite, engine=engine, seed=seed)


@app.command("inpaint")
@c.engine_options("model", "inpaint_model")
def inpaint(
    inputs: c.Inputs,
    mask: InpaintMask,
    mask_resize: MaskResize = False,
    grow: Annotated[
        int | None,
        typer.Option(
            "--grow",
            help="Grow the mask by PX, -256–256 (default 4; negative shrinks it), to cover the object's soft edge.",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    feather: Annotated[
        int | None,
        typer.Option(
            "--feather",
            help="Width in px, 0–256 (default 8), of the ramp outside the grown mask where the repaint fades into the original; 0 = hard edge.",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    area: Annotated[
        str | None,
        typer.Option(
            "--area",
            help="masked (default): repaint a crop around each mask region at the model's native resolution (512 SD 1.5, 1024 SDXL); whole: repaint the whole image at its own size.",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    padding: Annotated[
        int | None,
        typer.Option(
            "--padding",
            help="Context in px, 0–1024 (default 32), kept around the feathered mask in each crop (--area masked).",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    fill: Annotated[
        str | None,
        typer.Option(
            "--fill",
            help="Initial content of the masked area: original (default; what is there), blur (heavy blur of the surroundings), telea (OpenCV fill from the edges) or noise (seeded, surroundings' colours). Matters most below --strength 1.",
            rich_help_panel=c.P_MASK,
        ),
    ] = None,
    color_match: Annotated[
        bool,
        typer.Option(
            "--color-match/--no-color-match",
            help="Match the repaint's Lab mean and spread to the unmasked ring around it; --no-color-match when the prompt asks for colours unlike the surroundings.",
            rich_help_panel=c.P_COLOUR,
        ),
    ] = True,
    strength: Annotated[
        float | None,
        typer.Option(
            "--strength",
            "-s",
            help="How much the masked area changes, 0–1 (default 0.75): 0 keeps the --fill content, 1 repaints from noise.",
            rich_help_panel=c.P_DIFF,
        ),
    ] = None,
    preset: c.Preset = None,
    prompt: c.Prompt = None,
    negative_prompt: c.NegativePrompt = None,
    steps: c.Steps = None,
    guidance: c.Guidance = None,
    seed: c.Seed = None,
    scheduler: c.Scheduler = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
) -> None:
    """Repaint the masked part of an image with a prompt; every other pixel stays bit-identical.

    Pixels where the grown, feathered mask is 0 are copied from the input unchanged.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    opts = build_options(
        "inpaint",
        c.with_preset(
            preset,
            c.drop_none(
                prompt=prompt,
                negative_prompt=negative_prompt,
                strength=strength,
                steps=steps,
                guidance=guidance,
                scheduler=scheduler,
                grow=grow,
                feather=feather,
                area=area,
                padding=padding,
                fill=fill,
                color_match=color_match,
                mask_resize=mask_resize,
            ),
            "inpaint",
        ),
    )
    mask_image = _load_mask(mask)

    def work(item, ctx):
        return apply_stage("inpaint", _masked_input(item.input, mask_image, ctx), opts, ctx), {}

    c.process_images(inputs, output, "inpaint", work, overwrite=overwrite, engine=engine, seed=seed)
