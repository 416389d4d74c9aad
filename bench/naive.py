"""The common way to upscale in tiles (Ultimate-SD-Upscale style), as the baseline, and a seam measure.

Each pixel tile of the pre-upscaled image goes through its own diffusers
`StableDiffusionControlNetImg2ImgPipeline` call (its own prompt encoding, VAE encode, denoising
and VAE decode) with the tile itself as the ControlNet-tile condition; the decoded tiles are then
pasted with linear feathering over the overlap. Same models, sampler, steps, strength, guidance,
conditioning scale and output size as the stage it is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def naive_spans(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Tiles of `tile` px stepping by `tile - overlap`, the last one moved back to end at the edge."""
    if size <= tile:
        return [(0, size)]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return [(s, s + tile) for s in starts]


def naive_grid(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) boxes, row-major."""
    return [
        (x0, y0, x1, y1)
        for (y0, y1) in naive_spans(height, tile, overlap)
        for (x0, x1) in naive_spans(width, tile, overlap)
    ]


def paste_weights_1d(
    spans: Sequence[tuple[int, int]], size: int, feather: int | None
) -> list[np.ndarray]:
    """Per-span 1-D paste weights that sum to one along the axis.

    `feather=None` cross-fades linearly over each whole overlap; an integer cross-fades over
    `feather` px centred in the overlap (Ultimate SD Upscale pastes each tile at the middle of
    the overlap with a mask blurred by 8 px, about a 16 px transition).
    """
    x = np.arange(size, dtype=np.float32) + 0.5
    rises = []  # weight of span i+1 against span i, over the whole axis
    for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False):
        lo, hi = b0, a1  # the overlap
        if feather is not None:
            mid = (lo + hi) / 2
            lo, hi = mid - feather / 2, mid + feather / 2
        rises.append(np.clip((x - lo) / max(hi - lo, 1e-6), 0.0, 1.0))
    out = []
    for i, (lo, hi) in enumerate(spans):
        w = np.ones(size, np.float32)
        if i > 0:
            w *= rises[i - 1]
        if i < len(spans) - 1:
            w *= 1.0 - rises[i]
        out.append(w[lo:hi])
    return out


def feathered_paste(
    tiles: Sequence[np.ndarray],
    boxes: Sequence[tuple[int, int, int, int]],
    width: int,
    height: int,
    feather: int | None = None,
) -> np.ndarray:
    """Paste (h, w, 3) tiles of a `naive_grid` with cross-fades (see `paste_weights_1d`)."""
    xs, ys = grid_spans(boxes)
    wx = dict(zip(xs, paste_weights_1d(xs, width, feather), strict=True))
    wy = dict(zip(ys, paste_weights_1d(ys, height, feather), strict=True))
    out = np.zeros((height, width, 3), np.float32)
    total = np.zeros((height, width, 1), np.float32)
    for img, (x0, y0, x1, y1) in zip(tiles, boxes, strict=True):
        w = (wy[(y0, y1)][:, None] * wx[(x0, x1)][None, :])[:, :, None]
        out[y0:y1, x0:x1] += img * w
        total[y0:y1, x0:x1] += w
    return out / np.maximum(total, 1e-12)


def transition_mask(
    spans: Sequence[tuple[int, int]], size: int, feather: int | None, pad: int = 2
) -> np.ndarray:
    """True where tiles are cross-faded along one axis (widened by `pad` px each side)."""
    mask = np.zeros(size, bool)
    for (_, a1), (b0, _) in zip(spans, spans[1:], strict=False):
        lo, hi = b0, a1
        if feather is not None:
            mid = (lo + hi) / 2
            lo, hi = int(math.floor(mid - feather / 2)), int(math.ceil(mid + feather / 2))
        mask[max(0, lo - pad) : min(size, hi + pad)] = True
    return mask


def naive_tiles(
    engine: Any, pre_upscaled: np.ndarray, opts: Any, seed: int, *, tile: int, overlap: int
) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """The tiles of an upscale done the way per-tile scripts do: one img2img call per pixel tile.

    `pre_upscaled` is (H, W, 3) float in [0, 1] at the output size (H, W multiples of 8); `opts`
    is the stage's `Options` (prompt, steps, creativity, guidance, resemblance, scheduler).
    Returns the decoded tiles and their boxes; `feathered_paste` joins them.
    """
    import torch
    from PIL import Image

    pipe = engine.controlnet_img2img(opts.scheduler)
    h, w = pre_upscaled.shape[:2]
    if w % 8 or h % 8:
        raise ValueError(f"the pre-upscaled image must be a multiple of 8 px a side; got {w}×{h}")
    boxes = naive_grid(w, h, tile, overlap)
    outs = []
    for x0, y0, x1, y1 in boxes:
        crop = Image.fromarray(np.rint(pre_upscaled[y0:y1, x0:x1] * 255).astype(np.uint8))
        result = pipe(
            prompt=opts.prompt,
            negative_prompt=opts.negative_prompt or None,
            image=crop,
            control_image=crop,
            height=y1 - y0,
            width=x1 - x0,
            strength=opts.creativity,
            num_inference_steps=opts.steps,
            guidance_scale=opts.guidance,
            controlnet_conditioning_scale=opts.resemblance,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
        ).images[0]
        outs.append(np.asarray(result, np.float32))
    return outs, boxes


def denoise_steps(steps: int, strength: float) -> int:
    """How many denoising steps diffusers' img2img runs for `steps` × `strength`."""
    return min(int(steps * strength), steps)


# ---------------------------------------------------------------------------------------------
# seams


def seam_ratio(image: np.ndarray, cols: np.ndarray, rows: np.ndarray, *, frame: int = 8) -> float:
    """Mean |gradient| where tiles were cross-faded, divided by the mean |gradient| elsewhere.

    `cols`/`rows` are boolean masks (see `transition_mask`) of the columns and rows where
    neighbouring tiles were blended. Horizontal differences |I(x+1) - I(x)| are split by whether
    they fall in a blended column, vertical ones by row; the outer `frame` px are left out.
    1.0: the tile grid leaves no trace in the image. Above 1: a step or a line at the seams.
    Below 1: a soft band where two tiles that disagree were averaged (ghosting, lost texture).
    """
    a = np.asarray(image, np.float32)
    h, w = a.shape[:2]
    dx = np.abs(np.diff(a, axis=1)).mean(axis=-1)[frame : h - frame, frame : w - frame - 1]
    dy = np.abs(np.diff(a, axis=0)).mean(axis=-1)[frame : h - frame - 1, frame : w - frame]
    c = (
        np.asarray(cols, bool)[frame : w - frame - 1]
        | np.asarray(cols, bool)[frame + 1 : w - frame]
    )
    r = (
        np.asarray(rows, bool)[frame : h - frame - 1]
        | np.asarray(rows, bool)[frame + 1 : h - frame]
    )
    border = np.concatenate([dx[:, c].ravel(), dy[r, :].ravel()])
    inside = np.concatenate([dx[:, ~c].ravel(), dy[~r, :].ravel()])
    if border.size == 0 or inside.size == 0:
        return math.nan
    return float(border.mean() / max(inside.mean(), 1e-12))


def grid_spans(
    boxes: Sequence[tuple[int, int, int, int]],
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The distinct x and y spans of a grid of (x0, y0, x1, y1) boxes."""
    xs = sorted({(b[0], b[2]) for b in boxes})
    ys = sorted({(b[1], b[3]) for b in boxes})
    return xs, ys
