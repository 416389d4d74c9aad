"""Tiled VAE encode/decode with blended overlaps, so memory follows the tile, not the image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sdenhance.diffusion.tiled_denoise import LATENT_FACTOR, tile_weights
from sdenhance.errors import SdenhanceError
from sdenhance.ops import tiling

if TYPE_CHECKING:
    import torch


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


def vae_encode(
    vae: Any, image: np.ndarray, *, tile: int, overlap: int = 64, device=None, dtype=None
) -> torch.Tensor:
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


def vae_decode(
    vae: Any, latents: torch.Tensor, *, tile: int, overlap: int = 64, device=None, dtype=None
) -> np.ndarray:
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
