"""Where an expanded image's canvas lies around the original, and what is new on it.

An expansion is asked for by the px added on each side, or by a target (an aspect ratio, or a
width and height) plus an anchor that says where the original sits on the larger canvas. Both
come down to one `Placement`: the canvas size and the original's box on it. The new area is
everything outside that box; the blend mask is 1 there and ramps to exactly 0 `seam` px into
the original, so every original pixel beyond the band stays bit-identical after the composite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from sdenhance.errors import SdenhanceError, option_text
from sdenhance.ops.masks import Box, feather

# where the original sits on each axis: 0 at the start, 1 centred, 2 at the end (in halves)
ANCHORS: dict[str, tuple[int, int]] = {
    "center": (1, 1),
    "top-left": (0, 0),
    "top": (1, 0),
    "top-right": (2, 0),
    "left": (0, 1),
    "right": (2, 1),
    "bottom-left": (0, 2),
    "bottom": (1, 2),
    "bottom-right": (2, 2),
}
MAX_ASPECT = 32.0  # widest (or tallest) aspect ratio accepted, as W:H or H:W
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Placement:
    """The canvas (w, h) of an expanded image and the original's half-open box on it."""

    canvas: tuple[int, int]
    box: Box

    @property
    def margins(self) -> tuple[int, int, int, int]:
        """px added (left, top, right, bottom)."""
        x0, y0, x1, y1 = self.box
        return x0, y0, self.canvas[0] - x1, self.canvas[1] - y1


def parse_aspect(text: str) -> float:
    """W/H of an aspect written `16:9` (also `16x9`, `16/9`, `2.39:1`) or as one number."""
    match = _RATIO.match(text)
    try:
        ratio = float(match[1]) / float(match[2]) if match else float(text)
    except (ValueError, ZeroDivisionError):
        ratio = float("nan")
    if not 1.0 / MAX_ASPECT <= ratio <= MAX_ASPECT:  # also false for nan
        raise SdenhanceError(
            f"`aspect` must be W:H such as 16:9 or 3:2 (between 1:{MAX_ASPECT:g} and "
            f"{MAX_ASPECT:g}:1); got {text[:40]!r}"
        )
    return ratio


def by_sides(size: tuple[int, int], left: int, top: int, right: int, bottom: int) -> Placement:
    """The original with `left`/`top`/`right`/`bottom` px added around it."""
    w, h = size
    return Placement((left + w + right, top + h + bottom), (left, top, left + w, top + h))


def aspect_canvas(size: tuple[int, int], ratio: float) -> tuple[int, int]:
    """The smallest canvas of aspect `ratio` (W/H, rounded to whole px) that holds `size`:
    one side is kept, the other grows."""
    w, h = size
    if w / h < ratio:
        return max(w, round(h * ratio)), h
    return w, max(h, round(w / ratio))


def anchored(size: tuple[int, int], canvas: tuple[int, int], anchor: str) -> Placement:
    """The original placed on `canvas` at `anchor` (centred on an axis: the odd px goes right
    or down)."""
    w, h = size
    cw, ch = canvas
    if cw < w or ch < h:
        raise SdenhanceError(
            f"the canvas {cw}×{ch} is smaller than the image {w}×{h}; expand only grows an "
            "image (crop or resize it first)"
        )
    ax, ay = ANCHORS[anchor]
    x0, y0 = (cw - w) * ax // 2, (ch - h) * ay // 2
    return Placement((cw, ch), (x0, y0, x0 + w, y0 + h))


def placement(
    size: tuple[int, int],
    *,
    sides: tuple[int, int, int, int] = (0, 0, 0, 0),
    aspect: str | None = None,
    width: int | None = None,
    height: int | None = None,
    anchor: str = "center",
) -> Placement:
    """The placement asked for: `aspect`, else `width`/`height` (a missing one keeps the
    image's), else the px of `sides` (left, top, right, bottom). Refused when nothing grows."""
    if aspect is not None:
        placed = anchored(size, aspect_canvas(size, parse_aspect(aspect)), anchor)
    elif width is not None or height is not None:
        placed = anchored(size, (width or size[0], height or size[1]), anchor)
    else:
        placed = by_sides(size, *sides)
    if placed.canvas == tuple(size):
        w, h = size
        why = f"the image {w}×{h} already has that aspect" if aspect else "no side grows"
        raise SdenhanceError(f"nothing to expand: {why}; give {ways_text()} larger than the image")
    return placed


def ways_text() -> str:
    """The ways to ask for a size, as options or flags (`errors.option_text`)."""
    sides = "/".join(option_text(s) for s in ("left", "right", "top", "bottom"))
    return (
        f"px per side ({sides}), an {option_text('aspect')} such as 16:9, or a "
        f"{option_text('width')}/{option_text('height')}"
    )


def new_area(placed: Placement) -> np.ndarray:
    """(H, W) float32: 1 on the new area, 0 on the original."""
    w, h = placed.canvas
    x0, y0, x1, y1 = placed.box
    area = np.ones((h, w), np.float32)
    area[y0:y1, x0:x1] = 0.0
    return area


def seam_blend(placed: Placement, seam: int) -> np.ndarray:
    """(H, W) float32 blend mask: 1 on the new area, a smoothstep ramp reaching exactly 0 `seam`
    px into the original (only beside sides that grew), 0 beyond."""
    return feather(new_area(placed), seam)


def on_canvas(rgb: np.ndarray, placed: Placement) -> np.ndarray:
    """`rgb` (h, w, C) placed on a zero canvas (H, W, C)."""
    w, h = placed.canvas
    x0, y0, x1, y1 = placed.box
    out = np.zeros((h, w, *rgb.shape[2:]), rgb.dtype)
    out[y0:y1, x0:x1] = rgb
    return out


def mirror_fill(rgb: np.ndarray, placed: Placement) -> np.ndarray:
    """The canvas with the new area holding the original mirrored at its edges (repeated
    mirroring where a margin is wider than the image), via numpy's symmetric padding."""
    left, top, right, bottom = placed.margins
    pad = ((top, bottom), (left, right)) + ((0, 0),) * (rgb.ndim - 2)
    return np.pad(rgb, pad, mode="symmetric")
