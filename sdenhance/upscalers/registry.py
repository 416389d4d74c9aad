"""The upscaler registry: descriptors that say what each model does (scale, tiling, backend)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.models.formats import PICKLE_SUFFIXES

DEFAULT_UPSCALER = "realesrgan-x4plus"
EXTRA_HINT = "pip install 'sdenhance[upscalers]'"

MODEL_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
MIN_TILE = 16


class UnsupportedUpscalerError(SdenhanceError):
    """An upscaler name, file or model that sdenhance cannot run."""


@dataclass(frozen=True)
class UpscalerInfo:
    """What an upscaler can do, so callers need not guess.

    `scale` is the model's native factor (1 for resamplers, which reach any size in one step);
    `tile_support` says it runs in blended tiles with bounded memory; `kind` is "resample",
    "ncnn" or "spandrel"; `overlap` is the tile overlap in input pixels, wide enough that tile
    edges (where a convolution sees padding instead of image) get almost no weight. `tile` is
    the largest input tile side by default: the network's activations for one tile are the
    model-dependent part of the peak memory (about 0.8 GiB for x4plus at 128 px, 1.7 GiB at
    192 px), so a fixed bound keeps that part a constant, whatever the image size. `family`
    groups models that differ only in their factor (one name then picks the member by factor).
    """

    name: str
    scale: int
    description: str
    tile_support: bool
    kind: str
    overlap: int = 0
    tile: int = 192
    family: str = ""


class UpscalerRegistry:
    """Upscalers by id; refuses duplicate ids and aliases so a name always means one model."""

    def __init__(self) -> None:
        self._infos: dict[str, UpscalerInfo] = {}
        self._aliases: dict[str, str] = {}

    def add(self, info: UpscalerInfo, *, aliases: tuple[str, ...] = ()) -> UpscalerInfo:
        for name in (info.name, *aliases):
            if name in self._infos or name in self._aliases:
                raise ValueError(f"upscaler id {name!r} is already registered")
        self._infos[info.name] = info
        self._aliases.update({alias: info.name for alias in aliases})
        return info

    def get(self, name: str) -> UpscalerInfo:
        """The upscaler called `name` (an id or an alias), or `UnsupportedUpscalerError`."""
        key = self._aliases.get(name, name)
        try:
            return self._infos[key]
        except KeyError:
            raise UnsupportedUpscalerError(
                f"unknown upscaler `{name}`; known upscalers: {', '.join(self.names())}, "
                "or a path to a .safetensors/.pth model"
            ) from None

    def for_factor(self, name: str, factor: float) -> UpscalerInfo:
        """The model `name` runs for an enlargement by `factor`.

        A model id or alias is that model. A family name (`realesr-animevideov3`, which names
        no factor) picks its member of the smallest factor ≥ `factor` (the largest when none
        is), as realesrgan-ncnn-vulkan's `-n realesr-animevideov3 -s N` does: its ×2 and ×3
        models are trained for those factors and none costs more than the ×4.
        """
        info = self.get(name)
        members = [i for i in self._infos.values() if info.family and i.family == name]
        if not members:
            return info
        fitting = [i for i in members if i.scale >= factor - 1e-9]
        if fitting:
            return min(fitting, key=lambda i: i.scale)
        return max(members, key=lambda i: i.scale)

    def names(self) -> list[str]:
        """Every accepted name: ids in registration order, then aliases."""
        return [*self._infos, *self._aliases]

    def __contains__(self, name: object) -> bool:
        return name in self._infos or name in self._aliases

    def __iter__(self) -> Iterator[UpscalerInfo]:
        return iter(self._infos.values())


REGISTRY = UpscalerRegistry()
REGISTRY.add(
    UpscalerInfo(
        "lanczos", 1, "PIL Lanczos resampling: fast, soft, no new detail.", False, "resample"
    )
)
REGISTRY.add(
    UpscalerInfo(
        "bicubic", 1, "PIL bicubic resampling: fast, soft, no new detail.", False, "resample"
    )
)
REGISTRY.add(
    UpscalerInfo(
        "realesrgan-x4plus",
        4,
        "Real-ESRGAN ×4 for photos and general images (RRDB, bundled, CPU).",
        True,
        "ncnn",
        overlap=32,
        tile=128,
    )
)
REGISTRY.add(
    UpscalerInfo(
        "realesrgan-x4plus-anime",
        4,
        "Real-ESRGAN ×4 tuned for anime and illustrations (bundled, CPU).",
        True,
        "ncnn",
        overlap=32,
        tile=128,
    )
)
for _factor in (2, 3, 4):
    REGISTRY.add(
        UpscalerInfo(
            f"realesr-animevideov3-x{_factor}",
            _factor,
            f"Compact Real-ESRGAN ×{_factor} for anime video frames: fast, small (bundled, CPU).",
            True,
            "ncnn",
            overlap=32,
            tile=128,
            family="realesr-animevideov3",
        ),
        aliases=("realesr-animevideov3",) if _factor == 4 else (),
    )


def upscaler_names() -> list[str]:
    """Every registered upscaler name, aliases included (for option choices and help)."""
    return REGISTRY.names()


def get_upscaler(name: str) -> UpscalerInfo:
    """The descriptor of a registered upscaler; unknown names list the known ones."""
    return REGISTRY.get(name)


ModelFn = Callable[[np.ndarray], np.ndarray]  # (h, w, 3) float32 in [0, 1] -> (h*s, w*s, 3)


def padded_size(n: int, req) -> int:
    """Smallest length ≥ n meeting spandrel's size requirements (minimum, multiple_of)."""
    n = max(n, req.minimum)
    return -(-n // req.multiple_of) * req.multiple_of
