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
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops.color import color_transfer
from sdenhance.ops.crops import composite_exact, crop, crop_groups
from sdenhance.ops.masks import Box, check_mask, feather, grow, mask_from_image
from sdenhance.ops.soft_mask import soft_values
from sdenhance.options import option
from sdenhance.stages import Context
from sdenhance.stages.img2img import DEFAULT_NEGATIVE, effective_steps, pad_to_multiple
from sdenhance.stages.inpaint_soft import soft_step
from sdenhance.stages.networks import NetworkOptions
from sdenhance.stages.shared_mask import check_shared_mask

AREAS = ("masked", "whole")
FILLS = ("original", "blur", "telea", "noise")
RING_PX = 16  # width of the unmasked ring beyond the feather that colours and noise are read from
LATENT = 8  # pixels per latent cell (the VAE's factor in every SD 1.5 / SDXL model)


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


# --- initial content --------------------------------------------------------------------------


def ring_around(region: np.ndarray, width: int) -> np.ndarray:
    """Boolean ring of the unselected pixels within `width` px of `region` (1 = selected)."""
    return (grow(region, width) > 0) & (region == 0)


def blur_fill(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    """`region` filled with a normalised Gaussian blur of the pixels outside it.

    The blur's sigma is the region's depth (the largest distance from inside it to its edge),
    so even its centre is reached by the surroundings; it is computed at a reduced scale, since
    a blur that wide has no detail to lose. With nothing outside, the whole image is blurred.
    """
    h, w = region.shape
    inside = region > 0
    keep = (~inside).astype(np.float32)
    if keep.any():
        sigma = max(
            4.0, float(cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5).max())
        )
    else:
        keep[:] = 1.0
        sigma = max(4.0, min(h, w) / 8.0)
    factor = max(1, int(sigma // 8))
    small = (max(1, w // factor), max(1, h // factor))

    def blurred(arr: np.ndarray) -> np.ndarray:
        down = cv2.resize(arr, small, interpolation=cv2.INTER_AREA)
        down = cv2.GaussianBlur(down, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(down, (w, h), interpolation=cv2.INTER_LINEAR)

    num = blurred(rgb.astype(np.float32) * keep[..., None])
    den = blurred(keep)[..., None]
    mean = (rgb.astype(np.float64) * keep[..., None]).sum(axis=(0, 1)) / keep.sum()
    fill = np.where(den > 1e-4, num / np.maximum(den, 1e-4), mean)
    out = rgb.copy()
    out[inside] = np.clip(np.rint(fill[inside]), 0, 255).astype(np.uint8)
    return out


def noise_fill(rgb: np.ndarray, region: np.ndarray, ring: np.ndarray, seed: int) -> np.ndarray:
    """`region` filled with seeded Gaussian noise of the ring's per-channel mean and std."""
    outside = region == 0
    source = rgb[ring] if ring.any() else rgb[outside] if outside.any() else rgb.reshape(-1, 3)
    source = source.astype(np.float64)
    inside = region > 0
    values = np.random.default_rng(seed).normal(
        source.mean(axis=0), source.std(axis=0), size=(int(inside.sum()), 3)
    )
    out = rgb.copy()
    out[inside] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out


def initial_fill(
    rgb: np.ndarray, region: np.ndarray, fill: str, *, ring: np.ndarray, seed: int | None
) -> np.ndarray:
    """The image the model starts from: `rgb` with `region` given content by `fill`."""
    if fill == "original":
        return rgb
    if fill == "blur" or (fill == "telea" and not np.any(region == 0)):
        return blur_fill(rgb, region)  # Telea needs surroundings; a full mask has none
    if fill == "telea":
        from sdenhance.ops.fill import fill_region

        return fill_region(rgb, region, method="telea", radius=5)
    if seed is None:
        raise ValueError("noise fill needs a seed")
    return noise_fill(rgb, region, ring, seed)


# --- geometry ---------------------------------------------------------------------------------


def native_resolution(pipe: Any) -> int:
    """The side in px the pipeline's UNet was trained at (512 SD 1.5, 768 SD 2, 1024 SDXL).

    Read from the inpainting model itself, as diffusers does for its default size, so a
    dedicated inpainting model of another family or resolution than the base model is right.
    """
    side = pipe.unet.config.sample_size
    side = max(side) if isinstance(side, (list, tuple)) else side
    return int(side) * int(pipe.vae_scale_factor)


def processing_size(size: tuple[int, int], native: int) -> tuple[int, int]:
    """(w, h) of a crop scaled so its longer side is `native`, each side a multiple of 8."""
    w, h = size
    scale = native / max(w, h)
    return max(LATENT, round(w * scale / LATENT) * LATENT), max(
        LATENT, round(h * scale / LATENT) * LATENT
    )


def latent_cover(mask: np.ndarray) -> np.ndarray:
    """Every 8×8 latent cell that holds a selected pixel, fully selected.

    diffusers samples the mask once per latent cell, so a mask edge inside a cell could leave
    pixels of the mask unrepainted; covering whole cells repaints every one of them.
    """
    h, w = mask.shape
    cells = (mask > 0).reshape(h // LATENT, LATENT, w // LATENT, LATENT).any(axis=(1, 3))
    return np.repeat(np.repeat(cells, LATENT, axis=0), LATENT, axis=1)


@dataclass(frozen=True)
class Job:
    """One repaint: the box it covers, its blend mask there, and the size the model sees."""

    box: Box
    blend: np.ndarray  # (y1-y0, x1-x0) float32: this job's own feathered regions, 0 elsewhere
    size: tuple[int, int]  # (w, h) given to the pipeline
    resample: bool  # False: the box is padded to `size`, not resampled (area "whole")


def crop_job(box: Box, blend: np.ndarray, native: int) -> Job:
    """A repaint of `box` resampled to the model's native resolution (its aspect kept)."""
    return Job(box, blend, processing_size((box[2] - box[0], box[3] - box[1]), native), True)


def plan_jobs(blend: np.ndarray, opts: Options, native: int) -> list[Job]:
    """The repaints that cover `blend`: crops around its regions, or the whole image."""
    h, w = blend.shape
    if opts.area == "whole":
        return [Job((0, 0, w, h), blend, (w + (-w) % LATENT, h + (-h) % LATENT), False)]
    groups = crop_groups(
        blend, padding=opts.padding, aspect=1.0, multiple=LATENT, image_size=(w, h)
    )
    return [crop_job(box, own, native) for box, own in groups]


# --- the stage --------------------------------------------------------------------------------


def grown_region(mask: np.ndarray, opts: Options) -> np.ndarray:
    """The mask grown (or shrunk) by `opts.grow`; refused when shrinking leaves nothing."""
    region = grow(mask, opts.grow)
    if not np.any(region > 0):
        raise SdenhanceError(
            f"mask selects nothing after `grow`={opts.grow} px shrinks it; use a smaller shrink"
        )
    return region


def preflight(opts: Options, ctx: Context) -> None:
    """The mask every input shares (`ctx.images["mask"]`), checked once before a batch: one
    that selects nothing, or nothing once grown, is wrong for every input."""
    check_shared_mask(opts, ctx, grown_region)


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
        model_image, _ = pad_to_multiple(Image.fromarray(image), LATENT)
        model_mask = np.pad(region, ((0, ph - bh), (0, pw - bw)))
    steps = effective_steps(opts.steps, opts.strength)

    soften = soft_step(pipe, model_mask, LATENT) if opts.soft else None

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
    region = grown_region(mask, opts)
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
    jobs = plan_jobs(blend, opts, native_resolution(pipe))
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
