"""Denoise: remove grain and JPEG noise before upscaling, so the upscaler never sharpens it.

Classical filters from OpenCV, no model. `strength` 0..1 is one scale for every method:
nlmeans uses OpenCV's filter strength h = 20 × strength (h 3–10 is typical for photo grain, so
0.15–0.5); bilateral uses a colour sigma of 100 × strength 8-bit levels over a spatial sigma of
1 + 4 × strength pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdenhance.options import option

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from sdenhance.stages import Context

METHODS = ("nlmeans", "bilateral")
H_PER_STRENGTH = 20.0


@dataclass(frozen=True)
class Options:
    strength: float = option(
        0.25,
        "How hard noise is removed, 0 (off) to 1 (very strong; nlmeans h = 20 × strength).",
        ge=0.0,
        le=1.0,
    )
    method: str = option(
        "nlmeans",
        "nlmeans (non-local means: best detail kept, slower) or bilateral (fast, edge-preserving).",
        choices=METHODS,
    )


def denoise_array(rgb: np.ndarray, strength: float, method: str = "nlmeans") -> np.ndarray:
    """Denoise an 8-bit RGB array.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    strength : float
        0..1, see the module docstring.
    method : str
        One of `METHODS`.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
    """
    import cv2

    if strength == 0.0:
        return rgb.copy()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # OpenCV's colour filters assume BGR order
    if method == "nlmeans":
        h = H_PER_STRENGTH * strength
        out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)
    else:
        out = cv2.bilateralFilter(bgr, 0, 100.0 * strength, 1.0 + 4.0 * strength)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def run(image: Image.Image, opts: Options, ctx: Context) -> Image.Image:
    """Denoise `image` with `opts.method` at `opts.strength`."""
    import numpy as np
    from PIL import Image

    out = denoise_array(np.asarray(image.convert("RGB")), opts.strength, opts.method)
    return Image.fromarray(out)
