"""sdenhance: Stable Diffusion generative upscaling, inpainting and colour-true post-processing.

    >>> from sdenhance import Enhancer
    >>> out = Enhancer(model="path/or/hub-id").upscale("photo.png", scale=2, creativity=0.3)
"""

from __future__ import annotations

from .api import Enhancer, apply_stage, build_options
from .errors import SdenhanceError

__version__ = "0.1.0"

__all__ = [
    "Enhancer",
    "SdenhanceError",
    "__version__",
    "apply_stage",
    "build_options",
    "load_preset",
    "load_recipe",
    "run_recipe",
    "upscale",
]


def __getattr__(name: str):
    """Lazy exports: presets, recipes and the plain upscaler import only when used."""
    if name == "load_preset":
        from .presets import load_preset

        return load_preset
    if name in ("load_recipe", "run_recipe"):
        from . import recipes

        return getattr(recipes, name)
    if name == "upscale":
        from .upscalers import upscale

        return upscale
    raise AttributeError(f"module 'sdenhance' has no attribute {name!r}")
