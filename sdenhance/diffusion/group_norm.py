"""GroupNorm over an image split into tiles: each tile's partial statistics, their combination,
and the normalisation with statistics shared by every tile.

A VAE normalises each group of channels over the WHOLE image; normalising each tile over
itself gives each tile its own tone, the steps between tiles that tiled VAEs are known for.
Here each tile reports the weighted count, mean and squared deviation of its own pixels
(weights: its share of each pixel, summing to one over the tiles, so every pixel counts
once); these combine exactly (Chan et al.'s parallel variance, in float64) into the image's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Partial:
    """One tile's weighted statistics for one GroupNorm, per group (float64, shape (G,))."""

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor  # sum of weight × (x - mean)²
    eps: float


@dataclass(frozen=True)
class Stats:
    """What a GroupNorm subtracts and multiplies by, per group (float64, shape (G,))."""

    mean: torch.Tensor
    rstd: torch.Tensor


def partial_stats(x: torch.Tensor, weights: torch.Tensor, norm: Any) -> Partial:
    """`x` (1, C, H, W) weighted by `weights` (H, W) for the GroupNorm `norm`.

    Computed in float32 around the tile's own mean (no cancellation), returned in float64.
    """
    import torch

    groups = norm.num_groups
    xf = x.float().reshape(groups, -1, x.shape[-2] * x.shape[-1])
    w = weights.to(xf.device, torch.float32).reshape(1, 1, -1)
    count = w.sum() * xf.shape[1]
    if count <= 0:
        zero = torch.zeros(groups, dtype=torch.float64)
        return Partial(zero, zero, zero, norm.eps)
    mean = (xf * w).sum(dim=(1, 2)) / count
    m2 = ((xf - mean.view(-1, 1, 1)) ** 2 * w).sum(dim=(1, 2))
    as64 = lambda t: t.to("cpu", torch.float64)  # noqa: E731
    return Partial(as64(count).expand(groups).clone(), as64(mean), as64(m2), norm.eps)


def combine(parts: list[Partial]) -> Stats:
    """The statistics of the union of the tiles' pixels (exact, whatever the split)."""
    import torch

    count = torch.stack([p.count for p in parts]).sum(0)
    mean = torch.stack([p.count * p.mean for p in parts]).sum(0) / count
    m2 = torch.stack([p.m2 + p.count * (p.mean - mean) ** 2 for p in parts]).sum(0)
    var = (m2 / count).clamp_min(0.0)
    return Stats(mean, 1.0 / torch.sqrt(var + parts[0].eps))


def group_norm(x: torch.Tensor, norm: Any, stats: Stats) -> torch.Tensor:
    """`norm` (a torch GroupNorm) applied to `x` with the given statistics, in float32."""
    import torch

    groups = norm.num_groups
    shape = (1, groups, 1, 1, 1)
    mean = stats.mean.to(x.device, torch.float32).view(shape)
    rstd = stats.rstd.to(x.device, torch.float32).view(shape)
    y = (x.float().reshape(1, groups, -1, *x.shape[-2:]) - mean) * rstd
    y = y.reshape(x.shape)
    if norm.affine:
        y = y * norm.weight.float().view(1, -1, 1, 1) + norm.bias.float().view(1, -1, 1, 1)
    return y.to(x.dtype)
