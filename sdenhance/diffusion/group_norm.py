"""GroupNorm over a map taken in pieces: each piece's statistics, their combination, and the
normalisation with the statistics of the whole.

A VAE normalises each group of channels over the WHOLE image; normalising each tile over
itself gives each tile its own tone, the steps between tiles that tiled VAEs are known for.
Here each piece of a map reports the count, mean and squared deviation of its own values;
these combine exactly (Chan et al.'s parallel variance, in float64) into the image's.
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


def partial_stats(x: torch.Tensor, norm: Any) -> Partial:
    """The statistics of a piece `x` (1, C, H, W) of a map for the GroupNorm `norm`: computed
    in float32 around the piece's own mean (no cancellation), returned in float64."""
    import torch

    groups = norm.num_groups
    xf = x.float().reshape(groups, -1)
    var, mean = torch.var_mean(xf, dim=1, correction=0)
    count = torch.full((groups,), float(xf.shape[1]), dtype=torch.float64)
    as64 = lambda t: t.to("cpu", torch.float64)  # noqa: E731
    return Partial(count, as64(mean), as64(var) * count, norm.eps)


def combine(parts: list[Partial]) -> Stats:
    """The statistics of the union of the tiles' pixels (exact, whatever the split)."""
    import torch

    count = torch.stack([p.count for p in parts]).sum(0)
    mean = torch.stack([p.count * p.mean for p in parts]).sum(0) / count
    m2 = torch.stack([p.m2 + p.count * (p.mean - mean) ** 2 for p in parts]).sum(0)
    var = (m2 / count).clamp_min(0.0)
    return Stats(mean, 1.0 / torch.sqrt(var + parts[0].eps))


def group_norm(x: torch.Tensor, norm: Any, stats: Stats) -> torch.Tensor:
    """`norm` (a torch GroupNorm) applied to `x` with the given statistics: one per-channel
    multiply-add, in float32."""
    import torch

    channels = x.shape[1]
    per_group = channels // norm.num_groups
    mean = stats.mean.repeat_interleave(per_group)
    scale = stats.rstd.repeat_interleave(per_group)
    if norm.affine:
        scale = scale * norm.weight.detach().to("cpu", torch.float64)
        shift = norm.bias.detach().to("cpu", torch.float64) - mean * scale
    else:
        shift = -mean * scale
    shape = (1, channels, 1, 1)
    scale = scale.to(x.device, torch.float32).view(shape)
    shift = shift.to(x.device, torch.float32).view(shape)
    return torch.addcmul(shift, x.float(), scale).to(x.dtype)
