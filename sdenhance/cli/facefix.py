"""`sdenhance facefix`: repaint detected faces gently, keeping who they are."""

from __future__ import annotations

from typing import Any

import typer

from sdenhance.cli import common as c
from sdenhance.io.formats import SaveOptions
from sdenhance.models.config import EngineConfig
from sdenhance.stages import build_options

app = typer.Typer()


@app.command("facefix")
@c.engine_options("model", "inpaint_model")
@c.stage_options("facefix")
@c.output_options
def facefix(
    inputs: c.Inputs,
    preset: c.Preset = None,
    seed: c.Seed = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    saving: SaveOptions | None = None,
    engine: EngineConfig | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Find faces and repaint them gently for detail, keeping who they are.

    Pixels outside the face masks stay bit-identical; an image without faces is written
    unchanged. Lower --strength or --blend keeps more of the original person. --show writes
    the numbered detections instead ({stem}_faces.png), to pick faces with --faces and give
    each its own part of a "a [SEP] b" prompt.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    opts = build_options("facefix", c.with_preset(preset, values or {}, "facefix"))
    work = c.stage_work("facefix", opts)
    op = "faces" if opts.show else "facefix"
    c.process_images(
        inputs, output, op, work, overwrite=overwrite, engine=engine, seed=seed, saving=saving
    )
