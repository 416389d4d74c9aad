"""`sdenhance remove` (and `inpaint`): change the masked part of an image, keep the rest exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from PIL import Image

from sdenhance.cli import common as c
from sdenhance.errors import SdenhanceError
from sdenhance.io.convert import join_alpha
from sdenhance.io.formats import SaveOptions
from sdenhance.io.mask_record import mask_record
from sdenhance.models.config import EngineConfig
from sdenhance.stages import Context, build_options

app = typer.Typer()

MaskSource = Annotated[
    str,
    typer.Option(
        "--mask",
        help="Mask image, white (≥ 50 %) = the object; any mode, same size as the input (or "
        "--mask-resize). A folder: each input takes the mask of its stem (photo.png or "
        "photo_mask.png). `alpha`: the input's transparent pixels are the object "
        "(output is opaque).",
        rich_help_panel=c.P_MASK,
        show_default=False,
    ),
]
InpaintMask = Annotated[
    str,
    typer.Option(
        "--mask",
        help="Mask image, white (≥ 50 %) = repaint; any mode, same size as the input (or "
        "--mask-resize). A folder: each input takes the mask of its stem (photo.png or "
        "photo_mask.png). `alpha`: the input's transparent pixels are repainted "
        "(output is opaque).",
        rich_help_panel=c.P_MASK,
        show_default=False,
    ),
]
SkipUnmasked = Annotated[
    bool,
    typer.Option(
        "--skip-unmasked",
        help="With a mask folder: skip the inputs that have no mask in it instead of refusing "
        "the batch.",
        rich_help_panel=c.P_MASK,
    ),
]
MaskOf = Callable[[Path], "tuple[Image.Image | None, str]"]


def _read_mask(path: str | Path) -> Image.Image:
    from sdenhance.io.load import load_image

    loaded = load_image(path, metadata=False)
    return join_alpha(loaded.image, loaded.alpha)


def _mask_plan(
    spec: str, inputs: list[str], skip_unmasked: bool
) -> tuple[list[str], MaskOf, Image.Image | None]:
    """The inputs to run, each one's mask (None: `alpha`, taken from the input itself) and the
    one mask file all share, if it is one.

    A mask folder is paired with the inputs before any work, so a missing mask stops the batch
    at once (or, with `--skip-unmasked`, drops those inputs, listed on stderr), never halfway.
    """
    if spec == "alpha":
        return inputs, lambda path: (None, "alpha"), None
    if Path(spec).is_file():
        image = _read_mask(spec)
        return inputs, lambda path: (image, Path(spec).name), image
    if not Path(spec).is_dir():
        raise SdenhanceError(
            f"`--mask`: no such file or folder {spec!r}; give a mask image, a folder or `alpha`"
        )
    from sdenhance.batch import IMAGE_SUFFIXES, expand_inputs
    from sdenhance.ops.mask_pairs import pair_masks, unmasked_line

    masks = [p for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    pairs = pair_masks(expand_inputs(inputs), [p for p in masks if p.is_file()])
    missing = [path for path, mask in pairs.items() if mask is None]
    if missing and not skip_unmasked:
        raise SdenhanceError(
            f"{unmasked_line(missing)} (in {spec}); add them or pass --skip-unmasked"
        )
    if missing:
        c.err_console.print(f"skipped {unmasked_line(missing)}")
    kept = [path for path, mask in pairs.items() if mask is not None]
    if not kept:
        raise SdenhanceError(f"no input has a mask in {spec}")

    def mask_of(path: Path) -> tuple[Image.Image, str]:
        found = pairs[Path(path)]
        assert found is not None
        return _read_mask(found), found.name

    return [str(p) for p in kept], mask_of, None


def _masked_input(path: Path, mask_of: MaskOf, ctx: Context) -> Image.Image:
    """The input image, with its mask put in `ctx.images["mask"]`.

    With `--mask alpha` (mask_image None) the transparent pixels are the mask and the output is
    opaque: the alpha described what to change, not a transparency to keep.
    """
    from sdenhance.io.load import load_image
    from sdenhance.ops.masks import mask_from_alpha

    loaded = load_image(path, metadata=False)
    image, alpha = loaded.image, loaded.alpha
    mask_image, name = mask_of(Path(path))
    if mask_image is None:
        if alpha is None:
            raise SdenhanceError(
                f"`--mask alpha`: {path} has no transparency; give a mask image instead"
            )
        ctx.images["mask"] = Image.fromarray((mask_from_alpha(alpha) * 255).astype("uint8"), "L")
        alpha = None
    else:
        ctx.images["mask"] = mask_image
    ctx.record["mask"] = mask_record(ctx.images["mask"], name)  # for `run --from`
    return join_alpha(image, alpha)


def _check_mask_once(stage: str, opts: Any, mask_image: Image.Image | None):
    """The batch check of a `--mask` file all inputs share: one that selects nothing (or, grown,
    nothing or everything), or whose size is none of the inputs', is refused once."""

    def check(ctx: Context, inputs: list[Path]) -> None:
        if mask_image is None:  # --mask alpha: each input brings its own
            return
        from sdenhance.stages import preflight

        ctx.images["mask"] = mask_image
        preflight(stage, opts, ctx)
        if len(inputs) > 1 and not getattr(opts, "mask_resize", False):
            _mask_fits_some(mask_image.size, inputs)

    return check


def _mask_fits_some(size: tuple[int, int], inputs: list[Path]) -> None:
    from sdenhance.io.load import upright_size

    sizes = [upright_size(p) for p in inputs]
    if None in sizes or size in sizes:
        return
    w, h = size
    seen = ", ".join(sorted({f"{s[0]}×{s[1]}" for s in sizes if s})[:3])
    raise SdenhanceError(
        f"mask size {w}×{h} matches none of the {len(inputs)} inputs ({seen}); give a mask of "
        "their size or use --mask-resize to stretch it (nearest neighbour)"
    )


def _run_masked(
    stage: str,
    opts: Any,
    mask: Path,
    inputs: list[str],
    skip_unmasked: bool,
    output: str | None,
    overwrite: bool,
    engine: EngineConfig | None,
    seed: int | None,
    saving: SaveOptions | None,
) -> None:
    """Run a masked stage over the inputs: pair each with its mask, check the shared mask once."""
    inputs, mask_of, mask_image = _mask_plan(mask, inputs, skip_unmasked)
    work = c.stage_work(
        stage,
        opts,
        load=lambda path, ctx: _masked_input(path, mask_of, ctx),
        more_settings={"mask": mask},
    )
    c.process_images(
        inputs,
        output,
        stage,
        work,
        overwrite=overwrite,
        engine=engine,
        seed=seed,
        saving=saving,
        check=_check_mask_once(stage, opts, mask_image),
    )


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
    skip_unmasked: SkipUnmasked = False,
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
    _run_masked(
        "remove", opts, mask, inputs, skip_unmasked, output, overwrite, engine, seed, saving
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
    skip_unmasked: SkipUnmasked = False,
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
    _run_masked(
        "inpaint", opts, mask, inputs, skip_unmasked, output, overwrite, engine, seed, saving
    )
