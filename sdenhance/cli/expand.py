"""`sdenhance expand`: grow the canvas past the image's borders and paint the new area."""

from __future__ import annotations

from typing import Any

import typer

from sdenhance.cli import common as c
from sdenhance.io.formats import SaveOptions
from sdenhance.models.config import EngineConfig
from sdenhance.stages import build_options

app = typer.Typer()


@app.command("expand")
@c.engine_options("model", "inpaint_model")
@c.stage_options("expand")
@c.output_options
def expand(
    inputs: c.Inputs,
    seed: c.Seed = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    engine: EngineConfig | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Expand the canvas (outpainting) and paint the new area with the prompt.

    Size it by px per side (--right 256), or by --aspect 16:9 or --width/--height with
    --anchor (where the original sits). Original pixels beyond the --seam band stay
    bit-identical; a transparent input keeps its alpha, and the new area is opaque.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    opts = build_options("expand", values or {})
    c.warn_unused("expand", opts, values or {})
    work = c.stage_work("expand", opts)
    c.process_images(
        inputs, output, "expand", work, overwrite=overwrite, engine=engine, seed=seed, saving=saving
    )
