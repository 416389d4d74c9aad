"""Soft (graded) masks for differential diffusion: each pixel changes as much as its mask says.

A binary mask either repaints a pixel or keeps it. Differential diffusion reads the mask as a
per-pixel strength instead: at every sampler step the pixels whose value is below a threshold
that falls from 1 to 0 over the run are reset to the original (noised to that step), so a pixel
of value m is free only for about the last m of the steps. Value 1 is never reset (a plain
repaint), value 0 always is (it ends as the original). The maths here is pure; the stage
applies it to the latents through the pipeline's step callback.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_WIDE = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def soft_values(mask_img: Image.Image) -> np.ndarray:
    """Graded mask in [0, 1] from a mask image of any mode: white = 1, black = 0.

    Greyscale keeps its levels ('I' / 'I;16*' over 0..65535, 'F' over 0..1); colour uses its
    luminance, and transparency scales it, so a transparent pixel is 0 whatever RGB it hides.
    """
    mode = mask_img.mode
    if mode in _WIDE:
        return (np.clip(np.asarray(mask_img).astype(np.float64), 0, 65535) / 65535).astype(
            np.float32
        )
    if mode == "F":
        return np.clip(np.nan_to_num(np.asarray(mask_img, dtype=np.float32)), 0.0, 1.0)
    if "A" in mode or "transparency" in mask_img.info:
        la = np.asarray(mask_img.convert("RGBA").convert("LA"), dtype=np.float32) / 255.0
        return la[..., 0] * la[..., 1]
    return np.asarray(mask_img.convert("L"), dtype=np.float32) / 255.0


def cell_values(values: np.ndarray, cell: int) -> np.ndarray:
    """Per latent cell the largest value inside it, (H//cell, W//cell) for sides divisible by cell.

    The largest, not the mean: a binary mask then selects exactly the cells a plain repaint
    selects (every cell it touches), so soft mode on a binary mask repaints as plain mode does.
    """
    h, w = values.shape
    return values.reshape(h // cell, cell, w // cell, cell).max(axis=(1, 3))


def threshold(steps_done: int, total: int) -> float:
    """The value below which a pixel is reset after `steps_done` of `total` steps (1 -> 0)."""
    return 1.0 - steps_done / max(total, 1)


def free_after(values: np.ndarray, steps_done: int, total: int) -> np.ndarray:
    """Float 0/1 map: 1 where the sampler may change the pixel in the next step, 0 = reset."""
    return (values >= threshold(steps_done, total)).astype(np.float32)
