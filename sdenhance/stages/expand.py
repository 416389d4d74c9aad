"""Outpainting: grow the canvas past the image's borders and paint the new area with a prompt.

The canvas comes from px per side, or an aspect / a width and height with an anchor
(`ops.expand_geometry`). The new area gets a first content (`fill`), then the model repaints it
together with a band `seam` px deep into the original, window by window (`ops.expand_windows`:
native-size windows stepping outward, each seeing what is already painted). The composite
keeps every original pixel beyond the band bit-identical and ramps smoothly inside it.

An alpha channel is kept on the original and is opaque on the new area: what is painted there
is picture, and a transparent margin would hide it (`placed_alpha`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from sdenhance.diffusion.conditioning import conditioned
from sdenhance.errors import SdenhanceError, option_text
from sdenhance.io.limits import check_free_memory, check_output_size
from sdenhance.models.config import native_resolution
from sdenhance.models.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from sdenhance.ops.crops import composite_exact, crop
from sdenhance.ops.expand_fill import FILLS, first_fill
from sdenhance.ops.expand_geometry import (
    ANCHORS,
    Placement,
    parse_aspect,
    placement,
    seam_blend,
    ways_text,
)
from sdenhance.ops.expand_windows import context_px, plan_windows
from sdenhance.ops.masks import feather
from sdenhance.ops.repaint_plan import crop_job
from sdenhance.options import MAX_SIDE, option
from sdenhance.stages import Context, inpaint
from sdenhance.stages.img2img import DEFAULT_NEGATIVE
from sdenhance.stages.networks import NetworkOptions

SIDES = ("left", "right", "top", "bottom")
DIFFUSION = ("prompt", "negative_prompt", "steps", "guidance", "scheduler", "seam")
NETWORKS = ("loras", "embeddings", "clip_skip")
BYTES_PER_PIXEL = 100
"""Peak memory per canvas pixel: the canvases (uint8), masks (float32) and, largest, the
float64 mixing of the final `composite_exact`."""


def _side(name: str) -> Any:
    return option(0, f"px added on the {name} of the image.", ge=0, le=MAX_SIDE)


@dataclass(frozen=True)
class Options(NetworkOptions):
    left: int = _side("left")
    right: int = _side("right")
    top: int = _side("top")
    bottom: int = _side("bottom")
    aspect: str | None = option(
        None,
        "Grow to this aspect W:H (16:9, 3:2, 1:1...): the short side grows, the other is kept; "
        "`anchor` places the original.",
    )
    width: int | None = option(
        None,
        "Canvas width in px, at least the image's (height kept unless given); `anchor` places "
        "the original.",
        ge=1,
        le=MAX_SIDE,
    )
    height: int | None = option(
        None,
        "Canvas height in px, at least the image's (width kept unless given); `anchor` places "
        "the original.",
        ge=1,
        le=MAX_SIDE,
    )
    anchor: str = option(
        "center",
        "Where the original sits on a canvas given by `aspect` or `width`/`height` (with px per "
        "side, they place it).",
        choices=tuple(ANCHORS),
    )
    fill: str = option(
        "blur",
        "First content of the new area, which the repaint starts from (matters below strength "
        "1): blur (the border's colours, smoothly), mirror (the image mirrored at its edges), "
        "noise (seeded noise of the border's colours), patchmatch (texture copied from the "
        "image) or telea (colours propagated from the border).",
        choices=FILLS,
    )
    seam: int = option(
        32,
        "Depth in px, 0–256, of a band inside the original along each grown side that is "
        "repainted too and blended over the original with a smooth ramp, so the border does "
        "not show (0: the original is kept whole, with a hard edge).",
        ge=0,
        le=256,
    )
    prompt: str = option("", "What the new area should show (describe the whole picture).")
    negative_prompt: str = option(DEFAULT_NEGATIVE, "What the new area should avoid.")
    strength: float = option(
        0.9,
        "How much the new area changes from its fill, 0–1: 1 paints it from noise, lower keeps "
        "the fill's broad colours; 0 keeps the fill alone (no model loads).",
        ge=0.0,
        le=1.0,
    )
    steps: int = option(
        30, "Sampler steps of the full schedule, 1–500 (only strength×steps run).", ge=1, le=500
    )
    guidance: float = option(
        6.0, "Classifier-free guidance scale (1 disables it; 4–8 typical).", ge=0.0, le=30.0
    )
    scheduler: str = option(
        DEFAULT_SCHEDULER, "Sampler, by its AUTOMATIC1111-style name.", choices=tuple(SCHEDULERS)
    )

    def check(self) -> None:
        super().check()
        ways = [
            names
            for names, given in (
                (SIDES, any(getattr(self, s) for s in SIDES)),
                (("aspect",), self.aspect is not None),
                (("width", "height"), self.width is not None or self.height is not None),
            )
            if given
        ]
        if not ways:
            raise SdenhanceError(f"expand needs a new size: {ways_text()}")
        if len(ways) > 1:
            got = " and ".join("/".join(map(option_text, names)) for names in ways)
            raise SdenhanceError(f"give one way to size the canvas; got {got}")
        if self.aspect is not None:
            parse_aspect(self.aspect)
        if self.width is not None and self.height is not None:
            check_output_size((self.width, self.height))  # before any model loads


def in_effect(opts: Options) -> tuple[frozenset[str], str] | None:
    """The options that count: the size asked for one way; the fill alone at strength 0,
    the fill not at all at strength 1."""
    why = []
    if any(getattr(opts, s) for s in SIDES):
        size: tuple[str, ...] = SIDES
        why.append("px per side place the original")
    else:
        size = ("aspect",) if opts.aspect is not None else ("width", "height")
        size += ("anchor",)
    used = {*size, "strength"}
    if opts.strength > 0:
        used |= {*DIFFUSION, *NETWORKS}
    else:
        why.append("at strength 0 the fill is the result")
    if opts.strength < 1:
        used.add("fill")
    else:  # diffusers starts a full-strength inpaint from pure noise
        why.append("at strength 1 the new area is painted from noise")
    return frozenset(used), "; ".join(why) or "the size is asked for another way"


def placement_of(size: tuple[int, int], opts: Options) -> Placement:
    """The canvas and the original's place on it, checked against the output limit."""
    placed = placement(
        size,
        sides=(opts.left, opts.top, opts.right, opts.bottom),
        aspect=opts.aspect,
        width=opts.width,
        height=opts.height,
        anchor=opts.anchor,
    )
    check_output_size(placed.canvas)
    return placed


def target_size(size: tuple[int, int], opts: Options) -> tuple[int, int]:
    """The output size for an input of `size` (planning a chain's sizes before it runs)."""
    return placement_of(size, opts).canvas


def placed_alpha(alpha: Image.Image, opts: Options) -> Image.Image:
    """The input's alpha on the canvas: kept on the original, opaque on the new area."""
    placed = placement_of(alpha.size, opts)
    w, h = placed.canvas
    x0, y0, x1, y1 = placed.box
    out = np.full((h, w), 255, np.uint8)
    out[y0:y1, x0:x1] = np.asarray(alpha.convert("L"))
    return Image.fromarray(out, "L")


def painter_options(opts: Options) -> inpaint.Options:
    """The inpaint stage's options for each window's repaint (no colour match: a new area may
    rightly differ in colour from the border)."""
    return inpaint.Options(
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        strength=opts.strength,
        steps=opts.steps,
        guidance=opts.guidance,
        scheduler=opts.scheduler,
        color_match=False,
        loras=opts.loras,
        embeddings=opts.embeddings,
        clip_skip=opts.clip_skip,
    )


def paint_windows(
    start: np.ndarray,
    region: np.ndarray,
    windows: list[tuple[int, int, int, int]],
    paint: Any,
    feather_px: int,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """`start` with `region` painted window by window by `paint(n, box, image, mask)`.

    Each window paints the pixels of `region` in it that no earlier window painted, ramping
    `feather_px` back over what earlier windows painted so no edge shows between them, and
    sees everything painted before it. Returns the painted canvas and the windows that ran.
    """
    generated = start.copy()
    done = np.zeros(region.shape, bool)
    ran = []
    for box in windows:
        inside = crop(region, box)
        todo = inside * ~crop(done, box)
        if not todo.any():
            continue
        own = feather(todo, feather_px) * inside
        context = crop(generated, box)
        out = paint(len(ran), box, context, own)
        x0, y0, x1, y1 = box
        generated[y0:y1, x0:x1] = composite_exact(context, out, own)
        done[y0:y1, x0:x1] |= todo > 0
        ran.append(box)
    return generated, ran


def window_painter(pipe: Any, opts: Options, ctx: Context, generator: Any, cond: Any, total: int):
    """`paint(n, box, image, own)` for `paint_windows`: one window through the inpainting
    pipeline at the model's native size (`stages.inpaint.repaint`), prompts `cond`."""
    native = native_resolution(pipe)
    painter = painter_options(opts)

    def paint(n: int, box: Any, context: np.ndarray, own: np.ndarray) -> np.ndarray:
        label = f"expand {n + 1}/{total}"
        return inpaint.repaint(
            pipe,
            context,
            (own > 0).astype(np.float32),
            crop_job(box, own, native),
            painter,
            generator,
            lambda i, steps: ctx.progress(label, i, steps),
            cond,
        )

    return paint


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """Expand an RGB image's canvas and paint the new area; the original stays exact beyond
    the seam band."""
    # 1. Check inputs: the canvas asked for, within the output limit and the free memory
    placed = placement_of(image.size, opts)
    w, h = placed.canvas
    check_free_memory(w * h * BYTES_PER_PIXEL, f"expanding to {w}×{h}")
    original = np.asarray(image.convert("RGB"), dtype=np.uint8)

    # 2. For a repaint: the model, and its windows (too many are refused before any work)
    diffuse = opts.strength > 0
    if diffuse:
        pipe = ctx.engine.inpaint(opts.scheduler)
        native = native_resolution(pipe)
        windows = plan_windows(placed.canvas, placed.box, native, opts.seam)

    # 3. Blend mask: the new area, ramping to 0 `seam` px into the original
    blend = seam_blend(placed, opts.seam)
    region = (blend > 0).astype(np.float32)

    # 4. First content of the new area
    seed = ctx.resolve_seed() if diffuse or opts.fill in ("noise", "patchmatch") else None
    start = first_fill(original, placed, opts.fill, seed=seed)
    record: dict[str, Any] = {"canvas": [w, h], "box": list(placed.box)}
    if not diffuse:  # strength 0: the fill is the result, no model loads
        ctx.record["expand"] = record
        return Image.fromarray(start, "RGB")

    # 5. Paint the new area and the band window by window, stepping outward
    engine = ctx.engine
    generator = engine.generator(seed)  # type: ignore[arg-type]
    with conditioned(engine, pipe, opts, guidance=opts.guidance > 1.0) as (cond, networks):
        paint = window_painter(pipe, opts, ctx, generator, cond, len(windows))
        feather_px = max(1, context_px(native, opts.seam) // 2)
        generated, ran = paint_windows(start, region, windows, paint, feather_px)

    # 6. Composite: bit-identical to the original beyond the seam band
    result = composite_exact(start, generated, blend)

    # 7. Record what ran
    ctx.record.update(
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        models=engine.describe(),
        **networks,
        expand={**record, "windows": [list(box) for box in ran]},
    )
    return Image.fromarray(result, "RGB")
