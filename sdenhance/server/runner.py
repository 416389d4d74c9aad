"""One job's work: load its uploads, run its steps on a shared context, save the result.

Uploads go through the CLI's loader (`load_image`: format checked by content, pixel cap from
the header before decoding), so a hostile file is one user error, never a crash. Messages name
the upload's role (`image`, `mask`...), never the spool path it was written to. The result is
saved with `save_image`: atomic, with the full run record, so a cancelled or killed job leaves
no partial file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.convert import join_alpha
from sdenhance.server.specs import JobSpec, check_output_size
from sdenhance.stages import apply_stage

if TYPE_CHECKING:
    from sdenhance.stages import Context


def load_upload(path: Path, role: str) -> Image.Image:
    """An uploaded file as a PIL image (alpha joined back), errors naming `role`."""
    from sdenhance.io.load import load_image

    try:
        loaded = load_image(path)
    except SdenhanceError as exc:
        raise SdenhanceError(str(exc).replace(str(path), role)) from None
    return join_alpha(loaded.image, loaded.alpha)


def file_digest(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file (the input's id in the run record)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def safe_label(text: str) -> str:
    """A job label fit for a file name: letters, digits, - and _ only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "job"


def run_spec(
    spec: JobSpec,
    ctx: Context,
    *,
    job_id: str,
    outputs: Path,
    max_pixels: int | None,
    check_cancel,
) -> Path:
    """Run `spec` and save its result under `outputs`; returns the file written.

    `check_cancel()` raises when the job was cancelled; it is called before the work and
    again just before saving, and the context's progress callback calls it at every step.
    """
    from sdenhance.io.save import save_image

    # 1. Load the uploads and let the spec adjust them
    check_cancel()
    images = {role: load_upload(path, role) for role, path in spec.images.items()}
    if spec.prepare is not None:
        spec.prepare(images)
    image = images.pop("image")
    ctx.images.update(images)

    # 2. Refuse outputs over the server's pixel limit before any model loads
    check_output_size(spec.steps, image.size, max_pixels)

    # 3. Run the steps (a recipe through `run_recipe`, which records its name)
    if spec.recipe is not None:
        from sdenhance.recipes import run_recipe

        out = run_recipe(spec.recipe, image, ctx=ctx, steps=spec.steps)
    else:
        out = _run_steps(spec, image, ctx)
    if spec.finish is not None:
        out = spec.finish(out)

    # 4. Save atomically with the run record; a cancel that came in meanwhile wins
    check_cancel()
    record = {
        **ctx.record,
        "input": {"name": spec.input_name, "sha256": file_digest(spec.images["image"])},
        "job": job_id,
    }
    path = outputs / f"{job_id}-{safe_label(spec.label)}.png"
    return save_image(out, path, metadata=record)


def _run_steps(spec: JobSpec, image: Image.Image, ctx: Context) -> Image.Image:
    """The steps in order on one context; with several, progress labels say which step."""
    base = ctx.progress
    try:
        for step in spec.steps:
            if len(spec.steps) > 1:
                label = f"{step.index}/{len(spec.steps)} {step.stage}"
                ctx.progress = lambda text, done, total, label=label: base(
                    f"{label}: {text}", done, total
                )
            image = apply_stage(step.stage, image, step.options, ctx)
    finally:
        ctx.progress = base
    return image
