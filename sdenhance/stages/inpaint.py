"""Masked inpainting: repaint where the mask is white, keep every other pixel bit-identical.

The mask is grown (or shrunk), feathered outwards into a blend mask, and its area given
initial content (`fill`). With `area="masked"` each group of mask regions is cropped with
`padding` px of context, resampled to the model's native resolution and repainted there, so a
small mask gets the model's full detail; `area="whole"` repaints the image at its own size. The
repainted area is colour-matched to a ring of unmasked pixels around it and composited back with
`composite_exact`: diffusers' output alone re-encodes every pixel through the VAE, so only the
composite keeps the pixels where the blend mask is 0 exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from sdenhance.diffusion.conditioning import conditioned
from sdenhance.errors import SdenhanceError
from sdenhance.models.config import native_resolution
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops.color import color_transfer
from sdenhance.ops.crops import composite_exact, crop
from sdenhance.ops.inpaint_fill import FILLS, initial_fill, ring_around
from sdenhance.ops.masks import check_mask, feather, mask_from_image
from sdenhance.ops.repaint_plan import Job, grown_region, plan_jobs
from sdenhance.ops.sizes import LATENT_FACTOR, effective_steps, latent_cover
from sdenhance.ops.soft_mask import soft_values
from sdenhance.options import option
from sdenhance.stages import Context
from sdenhance.stages.img2img import DEFAULT_NEGATIVE, pad_to_multiple
from sdenhance.stages.inpaint_soft import soft_step
from sdenhance.stages.networks import NetworkOptions
from sdenhance.stages.shared_mask import check_shared_mask

AREAS = ("masked", "whole")
RING_PX = 16  # width of the unmasked ring beyond the feather that colours and noise are read from


@dataclass(frozen=True)
class Options(NetworkOptions):
    prompt: str = option("", "What the repainted area should show.")
    negative_prompt: str = option(DEFAULT_NEGATIVE, "What the repainted area should avoid.")
    strength: float = option(
        0.75,
        "How much the masked area changes, 0–1: 0 keeps the initial content (see `fill`), "
        "1 repaints it from noise.",
        ge=0.0,
        le=1.0,
    )
    steps: int = option(
        30, "Sampler steps of the full schedule, 1–500 (only strength×steps run).", ge=1, le=500
    )
    guidance: float = option(
        6.0, "Classifier-free guidance scale, 0–30 (1 disables it; 4–8 typical).", ge=0.0, le=30.0
    )
    scheduler: str = option(
        DEFAULT_SCHEDULER, "Sampler, by its AUTOMATIC1111-style name.", choices=tuple(SCHEDULERS)
    )
    grow: int = option(
        4,
        "Grow the mask by this many px (negative: shrink), -256–256, so the repaint covers the "
        "object's soft edge.",
        ge=-256,
        le=256,
    )
    feather: int = option(
        8,
        "Width in px, 0–256, of the soft ramp outside the grown mask over which the repaint "
        "fades into the original (0: hard edge).",
        ge=0,
        le=256,
    )
    area: str = option(
        "masked",
        "masked: repaint a crop around each mask region at the model's native resolution "
        "(more detail, faster); whole: repaint the whole image at its own size.",
        choices=AREAS,
    )
    padding: int = option(
        32,
        "Context in px, 0–1024, kept around the feathered mask in each crop (area masked only).",
        ge=0,
        le=1024,
    )
    fill: str = option(
        "original",
        "Initial content of the masked area: original (what is there), blur (a heavy blur of "
        "the surroundings), telea (OpenCV fill from the edges) or noise (seeded noise with the "
        "surroundings' colours). Matters most at strength below 1.",
        choices=FILLS,
    )
    color_match: bool = option(
        True,
        "Match the repainted area's Lab mean and spread to the unmasked ring around it; turn "
        "off when the prompt asks for colours unlike the surroundings.",
    )
    soft: bool = option(
        False,
        "Graded mask: each pixel changes in proportion to its mask value (grey = partly, "
        "black = kept), so soft edges blend; white repaints as without it (4-channel models).",
    )
    mask_resize: bool = option(
        False,
        "Stretch a mask of another size to the image (nearest neighbour) instead of refusing it.",
    )


# --- the stage --------------------------------------------------------------------------------


def preflight(opts: Options, ctx: Context) -> None:
    """The mask every input shares (`ctx.images["mask"]`), checked once before a batch: one
    that selects nothing, or nothing once grown, is wrong for every input."""
    check_shared_mask(opts, ctx, lambda mask, o: grown_region(mask, o.grow))


def repaint(
    pipe: Any,
    image: np.ndarray,
    region: np.ndarray,
    job: Job,
    opts: Options,
    generator: Any,
    progress: Any,
    cond: Any,
) -> np.ndarray:
    """Repaint `region` of `image` (both cropped to the job's box) at box size, prompts `cond`."""
    bw, bh = image.shape[1], image.shape[0]
    pw, ph = job.size
    if job.resample:
        model_image = Image.fromarray(image).resize((pw, ph), Image.Resampling.LANCZOS)
        model_mask = cv2.resize(region, (pw, ph), interpolation=cv2.INTER_AREA)
    else:
        model_image, _ = pad_to_multiple(Image.fromarray(image), LATENT_FACTOR)
        model_mask = np.pad(region, ((0, ph - bh), (0, pw - bw)))
    steps = effective_steps(opts.steps, opts.strength)

    soften = soft_step(pipe, model_mask, LATENT_FACTOR) if opts.soft else None

    def on_step(pipe_: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        progress(i + 1, pipe_.num_timesteps)
        return soften(pipe_, i, kwargs) if soften else kwargs

    out = pipe(
        **cond.pipe_kwargs(),
        image=model_image,
        mask_image=Image.fromarray(latent_cover(model_mask).astype(np.uint8) * 255, "L"),
        strength=opts.strength,
        num_inference_steps=steps,
        guidance_scale=opts.guidance,
        generator=generator,
        height=ph,
        width=pw,
        callback_on_step_end=on_step,
        callback_on_step_end_tensor_inputs=["latents", "mask"] if soften else ["latents"],
        output_type="pil",
    ).images[0]
    if job.resample:
        out = out.resize((bw, bh), Image.Resampling.LANCZOS)
    else:
        out = out.crop((0, 0, bw, bh))
    return np.asarray(out.convert("RGB"), dtype=np.uint8)


def repaint_matched(
    pipe: Any,
    image: np.ndarray,
    region: np.ndarray,
    job: Job,
    opts: Options,
    generator: Any,
    progress: Any,
    *,
    reference: np.ndarray,
    reference_mask: np.ndarray,
    cond: Any,
) -> np.ndarray:
    """`repaint`, then with `opts.color_match` its Lab mean and spread under `job.blend` moved
    to those of `reference` under `reference_mask` (all cropped to the job's box).

    A repaint drifts in colour (the VAE round trip, the prompt); matching it to pixels it
    should agree with keeps the blend edge invisible. Nothing is matched when
    `reference_mask` selects nothing.
    """
    out = repaint(pipe, image, region, job, opts, generator, progress, cond)
    if not opts.color_match or not np.any(reference_mask > 0):
        return out
    matched = color_transfer(
        out.astype(np.float32) / 255.0,
        reference.astype(np.float32) / 255.0,
        "lab",
        mask=job.blend,
        reference_mask=np.asarray(reference_mask, dtype=np.float32),
    )
    return np.clip(np.rint(matched * 255.0), 0, 255).astype(np.uint8)


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """Repaint the white part of `ctx.images["mask"]` in an RGB image; the rest stays exact."""
    # 1. Check inputs: a mask of the image's size (or stretched) that selects something
    mask_img = ctx.images.get("mask")
    if mask_img is None:
        raise SdenhanceError("inpaint needs a mask: white (or transparent, with `alpha`) = repaint")
    values = soft_values(mask_img) if opts.soft else mask_from_image(mask_img)
    mask = check_mask(values, image.size, resize=opts.mask_resize)

    # 2. Grow or shrink, then feather outwards into the blend mask
    region = grown_region(mask, opts.grow)
    blend = feather(region, opts.feather)
    ring = ring_around(region, opts.feather + RING_PX)
    original = np.asarray(image.convert("RGB"), dtype=np.uint8)

    # 3. Initial content under the mask
    diffuse = opts.strength > 0
    seed = ctx.resolve_seed() if diffuse or opts.fill == "noise" else None
    start = initial_fill(original, region, opts.fill, ring=ring, seed=seed)
    if not diffuse:  # strength 0: the fill is the result, no model loads
        return Image.fromarray(composite_exact(original, start, blend), "RGB")

    # 4. Repaint each crop (or the whole image), each one seeing the previous ones' results,
    #    colour-matched to the unmasked ring around it inside the crop
    engine = ctx.engine
    pipe = engine.inpaint(opts.scheduler)
    generator = engine.generator(seed)  # type: ignore[arg-type]
    jobs = plan_jobs(blend, area=opts.area, padding=opts.padding, native=native_resolution(pipe))
    generated = start.copy()
    done = np.zeros_like(blend)
    with conditioned(engine, pipe, opts, guidance=opts.guidance > 1.0) as (cond, networks):
        for n, job in enumerate(jobs):
            x0, y0, x1, y1 = job.box
            own = job.blend > 0
            context = composite_exact(*(crop(a, job.box) for a in (start, generated, done)))
            label = "inpaint" if len(jobs) == 1 else f"inpaint {n + 1}/{len(jobs)}"
            out = repaint_matched(
                pipe,
                context,
                crop(region, job.box) * own,
                job,
                opts,
                generator,
                lambda i, total, label=label: ctx.progress(label, i, total),
                reference=crop(original, job.box),
                reference_mask=crop(ring, job.box),
                cond=cond,
            )
            generated[y0:y1, x0:x1][own] = out[own]
            done[y0:y1, x0:x1] = np.maximum(done[y0:y1, x0:x1], job.blend)

    # 5. Composite: bit-identical to the input wherever the blend mask is 0
    result = composite_exact(original, generated, blend)

    # 6. Record what ran
    ctx.record.update(
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        models=engine.describe(),
        **networks,
        inpaint_crops=[{"box": list(job.box), "size": list(job.size)} for job in jobs],
    )
    return Image.fromarray(result, "RGB")
