"""The torch side of tiling: tile predictions merged on one latent canvas, one step at a time.

Model-agnostic on purpose: `tiled_denoise` takes any `predict(crops, tiles, t)`, so its
seam-freedom is proven on a deterministic stand-in denoiser (tests/test_tile_upscale.py).
Predictions within `edge_margin` of an inner tile edge (where the model saw zero padding
instead of neighbours) get zero weight; the rest are feathered with weights summing to one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sdenhance.diffusion.sampling import step_kwargs
from sdenhance.errors import SdenhanceError
from sdenhance.ops import tiling

if TYPE_CHECKING:
    import torch

# ---------------------------------------------------------------------------------------------
# the tiled denoising core: model-agnostic, so seam-freedom is testable with a stand-in


PredictFn = Callable[["torch.Tensor", Sequence[tiling.Tile], Any], "torch.Tensor"]


def edge_margin(overlap: int) -> int:
    """Pixels at each inner tile edge whose predictions get zero weight (a quarter of the overlap).

    Those pixels saw zero padding instead of their neighbours; leaving them out makes the merge
    exact for any denoiser whose per-step receptive radius fits in the margin.
    """
    return overlap // 4


def tile_weights(
    tiles: Sequence[tiling.Tile], width: int, height: int, overlap: int, margin: int | None = None
) -> list[np.ndarray]:
    """Feather weights per tile, zero within `margin` of inner edges, summing to one everywhere."""
    margin = edge_margin(overlap) if margin is None else margin
    raw = []
    for t in tiles:
        w = tiling.blend_weights(t, width, height, overlap).astype(np.float64)
        if margin:
            if t.x0 > 0:
                w[:, :margin] = 0
            if t.x1 < width:
                w[:, w.shape[1] - margin :] = 0
            if t.y0 > 0:
                w[:margin, :] = 0
            if t.y1 < height:
                w[w.shape[0] - margin :, :] = 0
        raw.append(w)
    total = np.zeros((height, width), np.float64)
    for t, w in zip(tiles, raw, strict=True):
        total[t.slices] += w
    if (total <= 0).any():
        raise SdenhanceError(f"tile overlap {overlap} is too small for a blend margin of {margin}")
    return [(w / total[t.slices]).astype(np.float32) for t, w in zip(tiles, raw, strict=True)]


def merge_predictions(
    latents: torch.Tensor,
    tiles: Sequence[tiling.Tile],
    weights: Sequence[torch.Tensor],
    predict: PredictFn,
    t: Any,
    batch: int,
) -> torch.Tensor:
    """Predict every tile (in batches of same-size tiles) and merge into one canvas tensor.

    The merge adds up in float32 (`weights` too), then takes the canvas's dtype: in half
    precision the merged prediction is rounded once, as one model call's would be.
    """
    import torch

    out = torch.zeros(latents.shape, dtype=torch.float32, device=latents.device)
    for start in range(0, len(tiles), batch):
        group = tiles[start : start + batch]
        crops = torch.cat([latents[:, :, tl.y0 : tl.y1, tl.x0 : tl.x1] for tl in group])
        pred = predict(crops, group, t).to(out.device, out.dtype)
        for i, tl in enumerate(group):
            out[:, :, tl.y0 : tl.y1, tl.x0 : tl.x1] += pred[i : i + 1] * weights[start + i]
    return out.to(latents.dtype)


def canvas_weights(
    tiles: Sequence[tiling.Tile], latents: torch.Tensor, overlap: int
) -> list[torch.Tensor]:
    """`tile_weights` for the canvas `latents`, as float32 tensors on its device."""
    import torch

    _, _, h, w = latents.shape
    return [torch.from_numpy(x).to(latents.device) for x in tile_weights(tiles, w, h, overlap)]


def tiled_denoise(
    latents: torch.Tensor,
    scheduler: Any,
    timesteps: Sequence[Any],
    tiles: Sequence[tiling.Tile],
    overlap: int,
    predict: PredictFn,
    *,
    batch: int = 4,
    progress: Callable[[int, int], None] | None = None,
    generator: Any = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Denoise one latent canvas: per step, merged tile predictions, one scheduler step.

    The step gets `generator` (and eta 0) only where the sampler takes them, as diffusers
    decides (`sampling.step_kwargs`). `on_step(i, n)` is told each step before its predictions
    (`predict.Predictor.start_step`).
    """
    weights = canvas_weights(tiles, latents, overlap)

    def noise(model_in: torch.Tensor, i: int, t: Any) -> torch.Tensor:
        return merge_predictions(model_in, tiles, weights, predict, t, batch)

    return denoise_loop(latents, scheduler, timesteps, noise, generator, progress, on_step)


def denoise_loop(
    latents: torch.Tensor,
    scheduler: Any,
    timesteps: Sequence[Any],
    noise: Callable[[torch.Tensor, int, Any], torch.Tensor],
    generator: Any,
    progress: Callable[[int, int], None] | None,
    on_step: Callable[[int, int], None] | None,
) -> torch.Tensor:
    """The sampler loop every tiling shares: per step, `noise(model input, i, t)` for the whole
    canvas, then one scheduler step."""
    extra = step_kwargs(scheduler, generator)
    for i, t in enumerate(timesteps):
        if on_step is not None:
            on_step(i, len(timesteps))
        model_in = scheduler.scale_model_input(latents, t)
        latents = scheduler.step(noise(model_in, i, t), t, latents, **extra, return_dict=False)[0]
        if progress is not None:
            progress(i + 1, len(timesteps))
    return latents
