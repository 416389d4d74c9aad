"""`sdenhance facefix`: repaint faces gently, keeping who they are; every other pixel stays exact."""

from __future__ import annotations

from typing import Annotated

import typer

from sdenhance.api import apply_stage, build_options, join_alpha
from sdenhance.cli import common as c
from sdenhance.models.config import EngineConfig

app = typer.Typer()

P_FACES = "Faces"


@app.command("facefix")
@c.engine_options("model", "inpaint_model")
def facefix(
    inputs: c.Inputs,
    strength: Annotated[
        float | None,
        typer.Option(
            "--strength",
            "-s",
            help="How far each face may move from the original, 0–1 (default 0.3; 0.2–0.4 keeps the person, higher invents more and risks someone else). Faces larger than the model's native size get less: × clamp(native / face side, 0.6, 1).",
            rich_help_panel=c.P_DIFF,
        ),
    ] = None,
    blend: Annotated[
        float | None,
        typer.Option(
            "--blend",
            help="Opacity of the repaint over the original face, 0–1 (default 0.85): lower keeps more of the original person and skin texture; 0 changes nothing.",
            rich_help_panel=P_FACES,
        ),
    ] = None,
    max_faces: Annotated[
        int | None,
        typer.Option(
            "--max-faces",
            help="Repaint at most N faces, 1–64 (default 8), the most certain ones first.",
            rich_help_panel=P_FACES,
        ),
    ] = None,
    min_face: Annotated[
        int | None,
        typer.Option(
            "--min-face",
            help="Ignore faces smaller than PX, 1–16384 (default 32): tiny faces gain little and are the likeliest false detections.",
            rich_help_panel=P_FACES,
        ),
    ] = None,
    padding: Annotated[
        float | None,
        typer.Option(
            "--padding",
            help="Context around each face in its crop, in face sizes per side, 0–2 (default 0.5); at least --dilate + --feather.",
            rich_help_panel=P_FACES,
        ),
    ] = None,
    dilate: Annotated[
        float | None,
        typer.Option(
            "--dilate",
            help="Grow the face ellipse beyond the detected box by this many box sides per side, -0.4–1 (default 0.15), to take in chin, forehead and cheeks.",
            rich_help_panel=P_FACES,
        ),
    ] = None,
    feather: Annotated[
        float | None,
        typer.Option(
            "--feather",
            help="Width of the ellipse's soft edge in box sides, 0–1 (default 0.1; 0 = hard edge).",
            rich_help_panel=P_FACES,
        ),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector",
            help="Face detector: lbp (default; offline cascade for frontal faces) or PATH of an UltraFace-style .onnx detector (needs onnxruntime).",
            rich_help_panel=P_FACES,
        ),
    ] = None,
    color_match: Annotated[
        bool,
        typer.Option(
            "--color-match/--no-color-match",
            help="Match each repainted face's Lab mean and spread to the original face, so skin tone does not drift.",
            rich_help_panel=c.P_COLOUR,
        ),
    ] = True,
    preset: c.Preset = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            "-p",
            help="What each repainted face should look like (default: a detailed photo of a face, natural skin texture, sharp eyes).",
            rich_help_panel=c.P_PROMPT,
        ),
    ] = None,
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
    """Find faces and repaint them gently for detail, keeping who they are.

    Pixels outside the face masks stay bit-identical; an image without faces is written
    unchanged. Lower --strength or --blend keeps more of the original person.
    """
    c.setup_logging(verbose)
    c.check_seed(seed)
    opts = build_options(
        "facefix",
        c.with_preset(
            preset,
            c.drop_none(
                prompt=prompt,
                negative_prompt=negative_prompt,
                strength=strength,
                blend=blend,
                max_faces=max_faces,
                min_face=min_face,
                padding=padding,
                dilate=dilate,
                feather=feather,
                detector=detector,
                color_match=color_match,
                steps=steps,
                guidance=guidance,
                scheduler=scheduler,
            ),
            "facefix",
        ),
    )

    def work(item, ctx):
        from sdenhance.io.load import load_image

        loaded = load_image(item.input, metadata=False)
        image = apply_stage("facefix", join_alpha(loaded.image, loaded.alpha), opts, ctx)
        return image, {}

    c.process_images(inputs, output, "facefix", work, overwrite=overwrite, engine=engine, seed=seed)
