"""Whole-image feature maps computed tile by tile: the model runs on one tile (plus a halo of
its neighbours' values) at a time, its core is written into the map, and statistics are taken
over the whole map.

A map waits where memory allows (the device, the host, or a temporary file); only one tile's tensors
are ever on the device at once. Each latent cell has one owner tile, whose value it takes: a tiled
pass is the untiled one exactly as long as the halo covers the computation's reach, which one
layer's never exceeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sdenhance.diffusion.group_norm import Partial, Stats, combine, partial_stats
from sdenhance.ops import tiling

if TYPE_CHECKING:
    import torch

CHUNK_ELEMENTS = 1 << 24  # values per statistics chunk (64 MiB in float32)


@dataclass(frozen=True)
class Canvas:
    """A feature map (1, C, h·scale, w·scale) of the whole image, `scale` px per latent cell."""

    data: torch.Tensor
    scale: int


def owners(cores: Sequence[tiling.Tile]) -> list[tiling.Tile]:
    """Each tile's owned part of its core: the cells no earlier tile covers (a grid's last
    tile may overlap the one before it to end at the edge), a rectangle for a row-major grid."""
    height = max(c.y1 for c in cores)
    width = max(c.x1 for c in cores)
    owner = np.full((height, width), -1, np.int64)
    for i, core in enumerate(cores):
        region = owner[core.slices]
        region[region < 0] = i
    out = []
    for i in range(len(cores)):
        ys, xs = np.nonzero(owner == i)
        out.append(tiling.Tile(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return out


class Canvases:
    """Runs functions of tiles over whole-image maps whose memory `store.zeros(shape, dtype)`
    gives (on the device, the host or disk)."""

    def __init__(
        self,
        cores: Sequence[tiling.Tile],
        *,
        device: Any,
        dtype: Any,
        store: Any,
        halo: int = 2,
    ) -> None:
        self.cores = list(cores)
        self.owned = owners(self.cores)
        self.width = max(c.x1 for c in self.cores)
        self.height = max(c.y1 for c in self.cores)
        self.device, self.dtype, self.store = device, dtype, store
        self.halo = halo

    def span(self, core: tiling.Tile, halo: int) -> tiling.Tile:
        return tiling.Tile(
            max(0, core.x0 - halo),
            max(0, core.y0 - halo),
            min(self.width, core.x1 + halo),
            min(self.height, core.y1 + halo),
        )

    def map(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[Canvas],
        *,
        halo: int | None = None,
        into: Canvas | None = None,
    ) -> Canvas:
        """`fn` of each tile's crops of `inputs` (its core plus `halo` cells; by default enough
        for one convolution and one resampling) -> a map of each tile's owned cells.

        `into`: write over that input's own storage (when the shapes agree), which is right
        only if `fn` reads it pointwise (a residual), never a neighbour's cell: one map less.
        """
        import torch

        halo = self.halo if halo is None else halo
        out = None
        for core, part in zip(self.cores, self.owned, strict=True):
            span = self.span(core, halo)
            crops = [self._crop(c, span) for c in inputs]
            with torch.no_grad():
                y = fn(*crops)
            k = y.shape[-1] // span.width
            if out is None:
                shape = (1, y.shape[1], self.height * k, self.width * k)
                fits = into is not None and into.data.shape == shape and into.data.dtype == y.dtype
                out = into.data if fits else self.store.zeros(shape, y.dtype)
            dy, dx = (part.y0 - span.y0) * k, (part.x0 - span.x0) * k
            piece = y[:, :, dy : dy + part.height * k, dx : dx + part.width * k]
            out[:, :, part.y0 * k : part.y1 * k, part.x0 * k : part.x1 * k] = piece.to(out.device)
        assert out is not None
        return Canvas(out, k)

    def _crop(self, canvas: Canvas, span: tiling.Tile) -> torch.Tensor:
        k = canvas.scale
        crop = canvas.data[:, :, span.y0 * k : span.y1 * k, span.x0 * k : span.x1 * k]
        return crop.to(self.device, self.dtype)

    def stats(self, canvas: Canvas, norm: Any) -> Stats:
        """The GroupNorm `norm`'s statistics over the whole map, in row chunks."""
        data = canvas.data
        rows = max(1, CHUNK_ELEMENTS // max(1, data.shape[1] * data.shape[3]))
        parts: list[Partial] = [
            partial_stats(data[:, :, r0 : r0 + rows].to(self.device), norm)
            for r0 in range(0, data.shape[2], rows)
        ]
        return combine(parts)
