"""`sdenhance colorfix`, `blend`, `denoise` and `compare`: colour-true post-processing, offline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from sdenhance.cli import common as c
from sdenhance.cli.panels import P_COLOUR, P_OUT
from sdenhance.errors import SdenhanceError
from sdenhance.io.formats import SaveOptions
from sdenhance.stages import build_options

app = typer.Typer()


def _load_role(spec: Path, flag: str) -> Any:
    """The image given to `flag` (`--reference`, `--original`), loaded once for every input."""
    if not spec.is_file():
        raise SdenhanceError(f"`{flag}`: no such file {str(spec)!r}; give an image file")
    from sdenhance.io.load import load_image

    return load_image(spec, metadata=False)


def _work_with_role(stage: str, values: dict[str, Any] | None, role: str, spec: Path) -> Any:
    """The work of a stage that reads one more image (`role`) besides each input."""
    opts = build_options(stage, values or {})
    loaded = _load_role(spec, f"--{role}")
    return c.stage_work(
        stage,
        opts,
        roles={role: loaded.image},
        deep_roles={role: loaded.deep},
        extra={role: str(spec)},
    )


@app.command("colorfix")
@c.stage_options("colorfix")
@c.output_options
def colorfix(
    inputs: c.Inputs,
    reference: Annotated[
        Path,
        typer.Option(
            "--reference",
            "-r",
            help="Image whose colours to match, usually the input the outputs were made from; any "
            "size.",
            rich_help_panel=P_COLOUR,
            show_default=False,
        ),
    ],
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Give images the colours of a reference, keeping their detail (fixes diffusion colour
    drift)."""
    c.setup_logging(verbose)
    work = _work_with_role("colorfix", values, "reference", reference)
    c.process_images(inputs, output, "colorfix", work, overwrite=overwrite, saving=saving)


@app.command("blend")
@c.stage_options("blend")
@c.output_options
def blend(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Enhanced images: files, folders or globs.", show_default=False),
    ],
    original: Annotated[
        Path,
        typer.Option(
            "--original",
            help="The image before enhancement; resampled (Lanczos) to each enhanced image's size.",
            rich_help_panel=P_COLOUR,
            show_default=False,
        ),
    ],
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Lay enhanced images over their original at an opacity."""
    c.setup_logging(verbose)
    work = _work_with_role("blend", values, "original", original)
    c.process_images(inputs, output, "blend", work, overwrite=overwrite, saving=saving)


@app.command("denoise")
@c.stage_options("denoise")
@c.output_options
def denoise(
    inputs: c.Inputs,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Remove grain and JPEG noise (before upscaling: never upscale noise)."""
    c.setup_logging(verbose)
    opts = build_options("denoise", values or {})
    work = c.stage_work("denoise", opts)
    c.process_images(inputs, output, "denoise", work, overwrite=overwrite, saving=saving)


@app.command("compare")
def compare(
    a: Annotated[
        Path, typer.Argument(help="Reference image (e.g. the original).", show_default=False)
    ],
    b: Annotated[
        Path,
        typer.Argument(
            help="Image to score against A; resampled to A's size if it differs.",
            show_default=False,
        ),
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON object instead of text.", rich_help_panel=P_OUT
        ),
    ] = False,
) -> None:
    """Score B against A: PSNR (dB, higher is closer), SSIM (1 = same structure) and mean
    CIEDE2000 colour difference (about 1 is just visible, over 5 another colour)."""
    from sdenhance.io.convert import to_array
    from sdenhance.ops.metrics import compare as compare_arrays

    first, second = _load_role(a, "A"), _load_role(b, "B")
    scores = compare_arrays(to_array(first.image), to_array(second.image))
    alpha_ignored = first.alpha is not None or second.alpha is not None
    if as_json:
        result = {
            "a": str(a),
            "b": str(b),
            **scores,
            # JSON has no infinity: identical images have no finite PSNR
            "psnr": scores["psnr"] if math.isfinite(scores["psnr"]) else None,
            "identical": not math.isfinite(scores["psnr"]),
            "size_a": list(scores["size_a"]),
            "size_b": list(scores["size_b"]),
            "alpha_ignored": alpha_ignored,
        }
        c.out_console.print(json.dumps(result), markup=False, highlight=False, soft_wrap=True)
        return

    if scores["resampled"]:
        (wa, ha), (wb, hb) = scores["size_a"], scores["size_b"]
        c.err_console.print(f"note: B resampled from {wb}×{hb} to A's {wa}×{ha} (Lanczos)")
    if alpha_ignored:
        c.err_console.print("note: transparency ignored; colour channels compared")
    psnr = f"{scores['psnr']:.2f} dB" if math.isfinite(scores["psnr"]) else "inf (identical)"
    for line in (
        f"PSNR    {psnr}",
        f"SSIM    {scores['ssim']:.4f}",
        f"dE2000  {scores['delta_e']:.2f}",
    ):
        c.out_console.print(line, markup=False, highlight=False)
