"""`sdenhance remove` (and `inpaint`): change the masked part of an image, keep the rest exact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from PIL import Image

from ..api import apply_stage, build_options, join_alpha
from ..errors import SdenhanceError
from . import common as c

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
    from ..image import load_image

    loaded = load_image(spec)
    return join_alpha(loaded.image, loaded.alpha)


@app.command("remove")
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
    model: c.Model = None,
    inpaint_model: c.InpaintModel = None,
    model_config: c.ModelConfig = None,
    allow_pickle: c.AllowPickle = False,
    device: c.Device = "auto",
    dtype: c.Dtype = "auto",
    offload: c.Offload = "none",
    vae_tiling: c.VaeTiling = False,
    attention_slicing: c.AttentionSlicing = False,
    verbose: c.Verbose = False,
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
    engine = c.engine_config(
        model=model,
        inpaint_model=inpaint_model,
        model_config=model_config,
        device=device,
        dtype=dtype,
        offload=offload,
        vae_tiling=vae_tiling,
        attention_slicing=attention_slicing,
        allow_pickle=allow_pickle,
    )
    mask_image = _load_mask(mask)

    def work(item, ctx):
        from ..image import load_image
        from ..ops.masks import mask_from_alpha

        loaded = load_image(item.input)
        image, alpha = loaded.image, loaded.alpha
        if mask_image is None:
            if alpha is None:
                raise SdenhanceError(
                    f"`--mask alpha`: {item.input} has no transparency; give a mask image instead"
                )
            ctx.images["mask"] = Image.fromarray(
                (mask_from_alpha(alpha) * 255).astype("uint8"), "L"
            )
            alpha = None  # the alpha was the mask: the object is filled, the output opaque
        else:
            ctx.images["mask"] = mask_image
        return apply_stage("remove", join_alpha(image, alpha), opts, ctx), {}

    c.process_images(inputs, output, "remove", work, overwrite=overwrite, engine=engine, seed=seed)
