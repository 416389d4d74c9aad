"""The windows an expansion is painted in: native-size boxes stepping outward from the original.

A model paints best at its native size and only what it sees can agree with the picture, so
a new area wider than that is painted in several windows, each about `native` px square and
each holding already-painted content (the original, or earlier windows' results) on its inner
side. Per axis the windows are spans: those over the original (step 0; one centred span when
the original is narrower than a window, so the first window has the whole original in view)
and those stepping outward (±1, ±2 ...), each starting `context` px back inside what is
painted by then. A window is the product of an x and a y span; those that hold no new pixel
are dropped, and the rest are painted ring by ring (the larger step of the two axes), edges
before corners, so every window finds content beside it that is already painted.
"""

from __future__ import annotations

import math

from sdenhance.errors import SdenhanceError
from sdenhance.ops.masks import Box
from sdenhance.ops.sizes import LATENT_FACTOR

CONTEXT = 0.375
"""Share of a window, on the side facing the original, that already-painted content fills."""
MIN_NEW = 0.25
"""Least share of a window that is new in the first step past the original and its seam."""
MAX_WINDOWS = 256
"""Most windows one expansion may take (a 10240 px wide canvas at 1024 px windows)."""

Span = tuple[int, int, int]  # start, end, step (0 over the original, ±k outward)


def context_px(native: int, seam: int) -> int:
    """px of painted content a window keeps on its inner side: `CONTEXT` of the window, less
    where the seam band would leave less than `MIN_NEW` of the first step new."""
    f = LATENT_FACTOR
    wanted = round(native * CONTEXT / f) * f
    return max(0, min(wanted, native - seam - math.ceil(native * MIN_NEW)))


def check_seam(seam: int, native: int) -> None:
    """A seam band over half a window would leave the first windows no room to see or paint."""
    if seam > native // 2:
        raise SdenhanceError(
            f"`seam` must be at most half the model's native size ({native // 2} px for this "
            f"{native} px model); got {seam}"
        )


def _centre_spans(lo: int, hi: int, length: int, size: int, context: int) -> list[Span]:
    """Spans over [lo, hi): one centred span if it fits in a window, else evenly spaced spans
    overlapping by at least `context`."""
    if hi - lo <= size:
        start = min(max((lo + hi - size) // 2, 0), length - size)
        return [(start, start + size, 0)]
    count = math.ceil((hi - lo - context) / (size - context))
    gap = (hi - lo - size) / (count - 1)
    return [(lo + round(i * gap), lo + round(i * gap) + size, 0) for i in range(count)]


def _outward(known: int, length: int, size: int, context: int) -> list[Span]:
    """Spans stepping towards `length` from painted content that ends at `known`."""
    spans: list[Span] = []
    while known < length:
        start = max(0, known - context)
        end = min(length, start + size)
        start = end - size
        if end <= known:
            raise ValueError(f"a window of {size} px from {known} px does not step outward")
        spans.append((start, end, len(spans) + 1))
        known = end
    return spans


def axis_spans(lo: int, hi: int, length: int, native: int, seam: int) -> list[Span]:
    """The spans along one axis of `length` px where the original covers [lo, hi): over the
    original, then outward to each end. The first outward span reaches `seam` + context px
    into the original (the band it repaints, then what it sees)."""
    size = min(native, length)
    context = min(context_px(native, seam), size - 1)
    centre = _centre_spans(lo, hi, length, size, context)
    last, first = centre[-1][1], centre[0][0]
    after = _outward(last if last > hi else hi - seam, length, size, context) if hi < length else []
    # the start side is the end side of the mirrored axis
    known = length - (first if first < lo else lo + seam)
    mirrored = _outward(known, length, size, context) if lo > 0 else []
    before = [(length - end, length - start, -step) for start, end, step in mirrored]
    return before[::-1] + centre + after


def plan_windows(canvas: tuple[int, int], box: Box, native: int, seam: int) -> list[Box]:
    """The windows that paint the new area of `canvas` around the original at `box`, in the
    order they are painted (see the module's docstring)."""
    check_seam(seam, native)
    x0, y0, x1, y1 = box
    xs = axis_spans(x0, x1, canvas[0], native, seam)
    ys = axis_spans(y0, y1, canvas[1], native, seam)
    windows = []
    for sx0, sx1, ix in xs:
        for sy0, sy1, iy in ys:
            inside = x0 <= sx0 and sx1 <= x1 and y0 <= sy0 and sy1 <= y1
            if not inside:  # holds some new pixel
                key = (max(abs(ix), abs(iy)), abs(ix) + abs(iy), iy, ix)
                windows.append((key, (sx0, sy0, sx1, sy1)))
    if len(windows) > MAX_WINDOWS:
        raise SdenhanceError(
            f"this expansion needs {len(windows)} windows of {native} px (at most "
            f"{MAX_WINDOWS}); expand less, or use a model of a larger native size"
        )
    return [window for _, window in sorted(windows)]
