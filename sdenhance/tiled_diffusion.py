"""The torch side of tiling: tile predictions merged on one latent canvas, and the tiled VAE.

Model-agnostic on purpose: `tiled_denoise` takes any `predict(crops, tiles, t)`, so its
seam-freedom is proven on a deterministic stand-in denoiser (tests/test_tile_upscale.py).
Predictions within `edge_margin` of an inner tile edge (where the model saw zero padding
instead of neighbours) get zero weight; the rest are feathered with weights summing to one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import SdenhanceError
from .ops import tiling

if TYPE_CHECKING:
    import torch

LATENT_FACTOR = 8

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
    """Predict every tile (in batches of same-size tiles) and merge into one canvas tensor."""
    import torch

    out = torch.zeros_like(latents)
    for start in range(0, len(tiles), batch):
        group = tiles[start : start + batch]
        crops = torch.cat([latents[:, :, tl.y0 : tl.y1, tl.x0 : tl.x1] for tl in group])
        pred = predict(crops, group, t).to(out.device, out.dtype)
        for i, tl in enumerate(group):
            out[:, :, tl.y0 : tl.y1, tl.x0 : tl.x1] += pred[i : i + 1] * weights[start + i]
    return out


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
) -> torch.Tensor:
    """Denoise one latent canvas: per step, merged tile predictions, one scheduler step."""
    import torch

    _, _, h, w = latents.shape
    weights = [torch.from_numpy(x).to(latents.device, latents.dtype) for x in tile_weights(tiles, w, h, overlap)]
    for i, t in enumerate(timesteps):
        model_in = scheduler.scale_model_input(latents, t)
        noise = merge_predictions(model_in, tiles, weights, predict, t, batch)
        latents = scheduler.step(noise, t, latents, generator=generator, return_dict=False)[0]
        if progress is not None:
            progress(i + 1, len(timesteps))
    return latents


# ---------------------------------------------------------------------------------------------
# tiled VAE


def vae_tiling(max_tile: int, canvas: tuple[int, int]) -> tuple[int, int]:
    """VAE tile and overlap in px (multiples of 8): the overlap is a quarter tile, at most 64."""
    tile = min(max_tile, max(canvas))
    tile = max(LATENT_FACTOR, tile - tile % LATENT_FACTOR)
    overlap = min(64, (tile // 4) // LATENT_FACTOR * LATENT_FACTOR)
    return tile, overlap


def _vae_tiles(width: int, height: int, tile: int, overlap: int) -> list[tiling.Tile]:
    tw = tiling.fit_tile(width, tile, overlap)
    th = tiling.fit_tile(height, tile, overlap)
    return tiling.tile_grid(width, height, tw, th, overlap)


def vae_encode(vae: Any, image: np.ndarray, *, tile: int, overlap: int = 64, device=None, dtype=None) -> torch.Tensor:
    """Encode (H, W, 3) [0,1] to scaled latents in overlapping tiles, blended smoothly.

    The encoder's receptive field is cut at tile borders; the blend over a wide overlap turns
    any difference into a smooth ramp (no tone step), and the final colour fix removes the rest.
    """
    import torch

    h, w = image.shape[:2]
    lh, lw = h // LATENT_FACTOR, w // LATENT_FACTOR
    lat_tiles = _vae_tiles(lw, lh, tile // LATENT_FACTOR, overlap // LATENT_FACTOR)
    weights = tile_weights(lat_tiles, lw, lh, overlap // LATENT_FACTOR)
    channels = vae.config.latent_channels
    out = torch.zeros((1, channels, lh, lw), dtype=torch.float32)
    scaling = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.no_grad():
        for tl, wgt in zip(lat_tiles, weights, strict=True):
            f = LATENT_FACTOR
            crop = image[tl.y0 * f : tl.y1 * f, tl.x0 * f : tl.x1 * f]
            x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None] * 2.0 - 1.0
            lat = vae.encode(x.to(device, dtype)).latent_dist.mode()
            lat = ((lat - shift) * scaling).float().cpu()
            out[:, :, tl.y0 : tl.y1, tl.x0 : tl.x1] += lat * torch.from_numpy(wgt)
    return out


def vae_decode(vae: Any, latents: torch.Tensor, *, tile: int, overlap: int = 64, device=None, dtype=None) -> np.ndarray:
    """Decode scaled latents to (H, W, 3) [0,1] in overlapping tiles blended in pixel space."""
    import torch

    _, _, lh, lw = latents.shape
    f = LATENT_FACTOR
    lat_tiles = _vae_tiles(lw, lh, tile // f, overlap // f)
    px_tiles = [tiling.Tile(t.x0 * f, t.y0 * f, t.x1 * f, t.y1 * f) for t in lat_tiles]
    weights = tile_weights(px_tiles, lw * f, lh * f, overlap)
    out = np.zeros((lh * f, lw * f, 3), np.float32)
    scaling = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    with torch.no_grad():
        for tl, pt, wgt in zip(lat_tiles, px_tiles, weights, strict=True):
            z = latents[:, :, tl.y0 : tl.y1, tl.x0 : tl.x1] / scaling + shift
            x = vae.decode(z.to(device, dtype), return_dict=False)[0]
            x = ((x.float().cpu()[0] + 1.0) / 2.0).clamp(0, 1).numpy().transpose(1, 2, 0)
            if not np.isfinite(x).all():
                raise SdenhanceError(
                    "the VAE produced NaNs (fp16 overflow)",
                    hint="use --dtype fp32 or bf16, or an fp16-safe VAE",
                )
            out[pt.slices] += x * wgt[:, :, None]
    return out


