"""sdenhance: Stable Diffusion generative upscaling, inpainting and colour-true post-processing.

    >>> from sdenhance import Enhancer
    >>> out = Enhancer(model="path/or/hub-id").upscale("photo.png", scale=2, creativity=0.3)
"""

from __future__ import annotations

from .api import Enhancer, apply_stage, build_options
from .errors import SdenhanceError

__version__ = "0.1.0"

__all__ = ["Enhancer", "SdenhanceError", "apply_stage", "build_options", "__version__"]
