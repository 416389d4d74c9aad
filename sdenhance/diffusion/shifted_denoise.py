"""Denoising on shifted non-overlapping tile grids (`--tiling shifted`), and the choice of grid.

Each step rolls the latent canvas by that step's offset (`ops.shifted_tiles.step_offsets`),
predicts every tile of one fixed partition of the rolled canvas (tiles of one size batched
together), pastes the predictions side by side (no weights: each cell has exactly one) and
rolls the result back: one scheduler step on the whole canvas, as with the merged grid. Like
`tiled_denoise` it takes any `predict(crops, tiles, t)`; the tiles it hands over are where
the crops lie on the canvas itself, possibly running past its edge (they wrap), which is what
the ControlNet's crops of the control image follow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sdenhance.diffusion.tiled_denoise import PredictFn, denoise_loop, tiled_denoise
from sdenhance.ops import shifted_tiles, tiling

if TYPE_CHECKING:
    import torch


def shifted_predictions(
    latents: torch.Tensor,
    tiles: Sequence[tiling.Tile],
    offset: tuple[int, int],
    predict: PredictFn,
    t: Any,
    batch: int,
) -> torch.Tensor:
    """One prediction per canvas cell from the tiles of `tiles` rolled by `offset` (dx, dy)."""
    import torch

    dx, dy = offset
    _, _, height, width = latents.shape
    rolled = torch.roll(latents, shifts=(-dy, -dx), dims=(2, 3))
    out = torch.empty(latents.shape, dtype=torch.float32, device=latents.device)
    for group in shifted_tiles.shape_groups(tiles, batch):
        crops = torch.cat(
            [rolled[:, :, tiles[i].y0 : tiles[i].y1, tiles[i].x0 : tiles[i].x1] for i in group]
        )
        where = [shifted_tiles.moved(tiles[i], dx, dy, width, height) for i in group]
        pred = predict(crops, where, t).to(out.device, out.dtype)
        for j, i in enumerate(group):
            tl = tiles[i]
            out[:, :, tl.y0 : tl.y1, tl.x0 : tl.x1] = pred[j : j + 1]
    return torch.roll(out, shifts=(dy, dx), dims=(2, 3)).to(latents.dtype)


def shifted_denoise(
    latents: torch.Tensor,
    scheduler: Any,
    timesteps: Sequence[Any],
    tiles: Sequence[tiling.Tile],
    predict: PredictFn,
    *,
    seed: int,
    batch: int = 4,
    progress: Callable[[int, int], None] | None = None,
    generator: Any = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Denoise one latent canvas: per step, the tile grid shifted by a new offset, one scheduler
    step. `tiles` is a partition of the canvas (`shifted_tiles.partition`); `on_step(i, n)` as
    in `tiled_denoise`."""

    def noise(model_in: torch.Tensor, i: int, t: Any) -> torch.Tensor:
        offset = shifted_tiles.step_offsets(i, seed, tiles)
        return shifted_predictions(model_in, tiles, offset, predict, t, batch)

    return denoise_loop(latents, scheduler, timesteps, noise, generator, progress, on_step)


def denoise_tiles(
    mode: str,
    latents: torch.Tensor,
    scheduler: Any,
    timesteps: Sequence[Any],
    tiles: Sequence[tiling.Tile],
    overlap: int,
    predict: PredictFn,
    *,
    seed: int,
    batch: int = 4,
    progress: Callable[[int, int], None] | None = None,
    generator: Any = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """`tiled_denoise` (mode `merged`, or any one-tile canvas) or `shifted_denoise`."""
    if mode == "shifted" and len(tiles) > 1:
        return shifted_denoise(
            latents,
            scheduler,
            timesteps,
            tiles,
            predict,
            seed=seed,
            batch=batch,
            progress=progress,
            generator=generator,
            on_step=on_step,
        )
    return tiled_denoise(
        latents,
        scheduler,
        timesteps,
        tiles,
        overlap,
        predict,
        batch=batch,
        progress=progress,
        generator=generator,
        on_step=on_step,
    )
