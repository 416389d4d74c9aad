"""User-supplied ESRGAN-family model files through spandrel (optional extra `upscalers`)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.io.paths import require_file
from sdenhance.models.checkpoint import check_safetensors
from sdenhance.models.formats import PICKLE_SUFFIXES, is_pickle
from sdenhance.models.pickles import unpickle_weights_only
from sdenhance.upscalers.registry import (
    EXTRA_HINT,
    ModelFn,
    UnsupportedUpscalerError,
    UpscalerInfo,
    padded_size,
)


@functools.lru_cache(maxsize=4)
def _spandrel_model(path: str, mtime: float, allow_pickle: bool):
    """A spandrel image-model descriptor for `path` (cached while the file is unchanged)."""
    try:
        import spandrel
    except ImportError:
        raise SdenhanceError(
            f"upscaler model `{path}` needs spandrel, an optional extra", hint=EXTRA_HINT
        ) from None
    import torch

    try:
        if is_pickle(Path(path)):  # by content; allowed by the caller: only tensors come out
            state = unpickle_weights_only(Path(path))
        else:
            check_safetensors(Path(path))  # one line for a damaged file, before the loader
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        model = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise UnsupportedUpscalerError(
            f"upscaler model `{path}` has an architecture spandrel does not support"
        ) from None
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise UnsupportedUpscalerError(
            f"upscaler model `{path}` is not an image-to-image model ({type(model).__name__})"
        )
    if model.input_channels != 3 or model.output_channels != 3:
        raise UnsupportedUpscalerError(
            f"upscaler model `{path}` takes {model.input_channels} channels and gives "
            f"{model.output_channels}; only RGB-to-RGB models are supported"
        )
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return model


def spandrel_runner(path: str, allow_pickle: bool) -> tuple[UpscalerInfo, ModelFn]:
    file = Path(path)
    if not os.path.exists(file):
        raise SdenhanceError(f"upscaler model file `{path}` does not exist")
    require_file(file, "upscaler model", "a model file")
    if (file.suffix.lower() in PICKLE_SUFFIXES or is_pickle(file)) and not allow_pickle:
        raise SdenhanceError(
            f"upscaler model `{path}` is a pickle, which can run code when loaded; refused",
            hint="convert it to .safetensors, or pass --allow-pickle (`allow_pickle=True`) "
            "to load it weights-only",
        )
    resolved = str(file.resolve())
    model = _spandrel_model(resolved, file.stat().st_mtime, allow_pickle)
    import spandrel
    import torch

    req = model.size_requirements
    info = UpscalerInfo(
        name=path,
        scale=int(model.scale),
        description=f"{getattr(model.architecture, 'name', model.architecture)} ×{model.scale} via "
        "spandrel",
        tile_support=model.tiling != spandrel.ModelTiling.INTERNAL,
        kind="spandrel",
        overlap=32,
    )
    device = model.device

    def run(tile: np.ndarray) -> np.ndarray:
        h, w = tile.shape[:2]
        ph, pw = padded_size(h, req), padded_size(w, req)
        padded = np.pad(
            tile, ((0, ph - h), (0, pw - w), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge"
        )
        x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None].to(device)
        with torch.inference_mode():
            y = model(x)[0].float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
        return np.ascontiguousarray(y[: h * info.scale, : w * info.scale])

    return info, run
