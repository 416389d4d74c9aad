"""Sizes: an output size from a scale or a side, the latent grid, a crop at model resolution.

One rounding for every stage: a scaled side is rounded half up (3 px × 1.5 → 5, never 4), so
an upscale, a resize and a pre-upscale asked for the same scale agree to the pixel.
"""

from __future__ import annotations

import math

import numpy as np

LATENT_FACTOR = 8  # pixels per latent cell: the VAE's factor in every SD 1.5 / SD 2 / SDXL model


def scaled_side(side: int, scale: float) -> int:
    """`side` × `scale` rounded half up, at least 1 px."""
    return max(1, math.floor(side * scale + 0.5))


def target_size(
    size: tuple[int, int],
    *,
    scale: float | None = None,
    width: int | None = None,
    height: int | None = None,
) -> tuple[int, int]:
    """(w, h) from `width`/`height` (one alone keeps the aspect), else `size` × `scale`."""
    w, h = size
    if width and height:
        return width, height
    if width:
        return width, scaled_side(h, width / w)
    if height:
        return scaled_side(w, height / h), height
    if scale is None:
        raise ValueError("target_size needs a scale, a width or a height")
    return scaled_side(w, scale), scaled_side(h, scale)


def latent_canvas(size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) padded up to whole latent cells."""
    f = LATENT_FACTOR
    return math.ceil(size[0] / f) * f, math.ceil(size[1] / f) * f


def processing_size(size: tuple[int, int], native: int) -> tuple[int, int]:
    """(w, h) of a crop scaled so its longer side is `native`, each side whole latent cells."""
    w, h = size
    scale = native / max(w, h)
    f = LATENT_FACTOR
    return max(f, round(w * scale / f) * f), max(f, round(h * scale / f) * f)


def latent_cover(mask: np.ndarray) -> np.ndarray:
    """Every latent cell that holds a selected pixel, fully selected.

    diffusers samples the mask once per latent cell, so a mask edge inside a cell could leave
    pixels of the mask unrepainted; covering whole cells repaints every one of them. The mask's
    sides must be whole cells.
    """
    h, w = mask.shape
    f = LATENT_FACTOR
    cells = (mask > 0).reshape(h // f, f, w // f, f).any(axis=(1, 3))
    return np.repeat(np.repeat(cells, f, axis=0), f, axis=1)


def effective_steps(steps: int, strength: float) -> int:
    """Raise `steps` so that int(strength × steps) ≥ 1 (diffusers refuses zero denoising steps).

    Diffusers truncates the float product, so 5 × 0.19999999999999998 (a computed strength)
    runs no step although 1 / strength rounds to 5: count up until the product reaches 1.
    """
    if strength <= 0:
        return steps
    n = max(steps, math.ceil(1.0 / strength))
    while int(n * strength) < 1:
        n += 1
    return n
