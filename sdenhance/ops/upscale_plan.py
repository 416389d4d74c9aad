"""The work of a tiled upscale, known before any model loads: its latent tile grid, its step
count, the memory it needs, and the smaller settings to fall back on when memory runs out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sdenhance.ops import tiling
from sdenhance.ops.shifted_tiles import grid_tiles
from sdenhance.ops.sizes import LATENT_FACTOR, effective_steps, latent_canvas

# peak activation bytes of one fp32 sample through UNet + ControlNet on a native-size tile
ACTIVATION_BYTES = {"sd15": 1.2e9, "sdxl": 4.0e9}


@dataclass(frozen=True)
class Plan:
    """The work of one upscale."""

    size_in: tuple[int, int]
    size_out: tuple[int, int]
    canvas: tuple[int, int]  # padded to whole latent cells
    tiles: list[tiling.Tile]  # in latent units
    denoise_steps: int
    tile_batch: int

    @property
    def evaluations(self) -> int:
        """UNet (+ControlNet) forward passes, CFG pairs counted once."""
        return self.denoise_steps * len(self.tiles)

    def describe(self) -> str:
        t, f = self.tiles[0], LATENT_FACTOR
        return (
            f"{self.size_in[0]}×{self.size_in[1]} → {self.size_out[0]}×{self.size_out[1]}: "
            f"{len(self.tiles)} tile(s) of {t.width * f}×{t.height * f}, "
            f"{self.denoise_steps} step(s), {self.evaluations} model evaluations"
        )


def denoising_steps(steps: int, creativity: float) -> int:
    """The steps that actually denoise at `creativity` (img2img runs the schedule's tail)."""
    if creativity <= 0:
        return 0
    return int(effective_steps(steps, creativity) * creativity)


def grid_plan(
    size_in: tuple[int, int],
    size_out: tuple[int, int],
    *,
    tile: int,
    overlap: int,
    steps: int,
    creativity: float,
    tile_batch: int,
    tiling: str = "merged",
) -> Plan:
    """Tiles of at most `tile` px: overlapping by `overlap` px and shrunk to just cover the
    canvas (`merged`), or side by side with no overlap (`shifted`, see `ops.shifted_tiles`)."""
    canvas = latent_canvas(size_out)
    f = LATENT_FACTOR
    tiles = grid_tiles(canvas[0] // f, canvas[1] // f, tile // f, overlap // f, tiling)
    return Plan(size_in, size_out, canvas, tiles, denoising_steps(steps, creativity), tile_batch)


def estimate_bytes(work: Plan, opts: Any, family: str, dtype_bytes: int) -> int:
    """Memory an upscale needs beyond the loaded weights: image buffers plus the peak of the
    tile activations and the VAE tile (an estimate, deliberately on the high side).

    `opts` is the upscale's options (`tile_batch`, `guidance`, `vae_tile` are read)."""
    w, h = work.canvas
    buffers = w * h * 3 * 4 * 6  # pre-upscale, canvas, output, colour-fix temporaries
    t = work.tiles[0]
    native = 1024 if family == "sdxl" else 512
    per_sample = ACTIVATION_BYTES[family] * (t.width * t.height * 64) / native**2 * dtype_bytes / 4
    samples = min(opts.tile_batch, len(work.tiles)) * (2 if opts.guidance > 1.0 else 1)
    vae = min(opts.vae_tile, max(w, h)) ** 2 * 128 * 4 * 8  # decoder's full-size feature maps
    return int(buffers + max(per_sample * samples, vae))


def memory_fallbacks(opts: Any, native: int) -> list[Any]:
    """What to try when memory runs out: halve the tile batch to 1, then smaller tiles (down
    to 256 px) with a smaller VAE tile; each step costs speed, not quality of the merge.

    `opts` is a dataclass with `tile_batch`, `tile`, `overlap` and `vae_tile`."""
    tries = [opts]
    batch = opts.tile_batch
    while batch > 1:
        batch //= 2
        tries.append(dataclasses.replace(opts, tile_batch=batch))
    tile = opts.tile or native
    while tile > 256:
        tile = max(256, tile // 2 // 8 * 8)
        overlap = min(opts.overlap, tile // 4 // 8 * 8)
        tries.append(
            dataclasses.replace(opts, tile_batch=1, tile=tile, overlap=overlap, vae_tile=256)
        )
    return tries
