"""Half-open pixel rectangles: the one `Box` tuple and the `Rect` that tiles and faces share."""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), half-open


@dataclass(frozen=True)
class Rect:
    """A half-open box `[x0, x1) × [y0, y1)` in image (or latent) coordinates."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def box(self) -> Box:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def slices(self) -> tuple[slice, slice]:
        """`(rows, cols)` so that `array[rect.slices]` is the rectangle's patch."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)
