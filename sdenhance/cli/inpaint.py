"""`sdenhance remove` (and `inpaint`): change the masked part of an image, keep the rest exact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from PIL import Image

from sdenhance.cli import common as c
from sdenhance.errors import SdenhanceError
from sdenhance.io.convert import join_alpha
from sdenhance.io.formats import SaveOptions
from sdenhance.models.config import EngineConfig
from sdenhance.stages import Context, build_options

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


def _load_mask(spec: str) -> Image.Image | None:
    """The mask file as an image, or None for `alpha` (taken from each input)."""
    if spec == "alpha":
        return None
    if not Path(spec).is_file():
        raise SdenhanceError(f"`--mask`: no such file {spec!r}; give a mask image or `alpha`")
    from sdenhance.io.load import load_image

    loaded = load_image(spec)
    return join_alpha(loaded.image, loaded.alpha)


def _masked_input(path: Path, mask_image: Image.Image | None, ctx: Context) -> Image.Image:
    """The input image, with its mask put in `ctx.images["mask"]`.

    With `--mask alpha` (mask_image None) the transparent pixels are the mask and the output is
    opaque: the alpha described what to change, not a transparency to keep.
    """
    from sdenhance.io.load import load_image
    from sdenhance.ops.masks import mask_from_alpha

    loaded = load_image(path)
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
@c.stage_options("remove")
@c.output_options
def remove(
    inputs: c.Inputs,
    mask: MaskSource,
    seed: c.Seed = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    engine: EngineConfig | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Remove the masked object: fill it from its surroundings offline, then optionally refine.

    Pixels outside the grown mask stay bit-identical. Model options apply only with --refine;
    --no-refine is fully offline.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    opts = build_options("remove", values or {})
    c.warn_unused("remove", opts, values or {})
    mask_image = _load_mask(mask)
    work = c.stage_work(
        "remove",
        opts,
        load=lambda path, ctx: _masked_input(path, mask_image, ctx),
        extra={"mask": mask},
    )
    c.process_images(
        inputs,
        output,
        "remove",
        work,
        overwrite=overwrite,
        engine=engine,
        seed=seed,
        saving=saving,
    )


@app.command("inpaint")
@c.engine_options("model", "inpaint_model")
@c.stage_options("inpaint")
@c.output_options
def inpaint(
    inputs: c.Inputs,
    mask: InpaintMask,
    preset: c.Preset = None,
    seed: c.Seed = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    engine: EngineConfig | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Repaint the masked part of an image with a prompt; every other pixel stays bit-identical.

    Pixels where the grown, feathered mask is 0 are copied from the input unchanged.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    opts = build_options("inpaint", c.with_preset(preset, values or {}, "inpaint"))
    mask_image = _load_mask(mask)
    work = c.stage_work(
        "inpaint",
        opts,
        load=lambda path, ctx: _masked_input(path, mask_image, ctx),
        extra={"mask": mask},
    )
    c.process_images(
        inputs,
        output,
        "inpaint",
        work,
        overwrite=overwrite,
        engine=engine,
        seed=seed,
        saving=saving,
    )
