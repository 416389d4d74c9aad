"""sdenhance: Stable Diffusion generative upscaling, inpainting and colour-true post-processing.

>>> from sdenhance import Enhancer
>>> out = Enhancer(model="path/or/hub-id").upscale("photo.png", scale=2, creativity=0.3)
"""

from __future__ import annotations

from sdenhance._version import __version__
from sdenhance.api import Enhancer, apply_stage, build_options
from sdenhance.errors import SdenhanceError

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
        from sdenhance.presets import load_preset

        return load_preset
    if name in ("load_recipe", "run_recipe"):
        from sdenhance import recipes

        return getattr(recipes, name)
    if name == "upscale":
        from sdenhance.upscalers.upscale import upscale

        return upscale
    raise AttributeError(f"module 'sdenhance' has no attribute {name!r}")
