"""Offline fills of a masked region from its surroundings, in bounded time.

Three methods: ``patchmatch`` copies texture from the surroundings patch by patch (Barnes et
al.'s randomised nearest-neighbour search, as InvokeAI's default infill), ``telea`` (fast
marching) and ``ns`` (Navier-Stokes) propagate smooth colour inward with OpenCV. Diffusion
leaves a smooth smear over a large hole; PatchMatch keeps the grain of what surrounds it
(`bench/removal.py` measures both).

PatchMatch is PyPatchMatch: wheels for Linux, macOS and Windows ship its compiled library
with a statically linked OpenCV core, so nothing is compiled or downloaded when it runs, and
it is seeded, so equal inputs give equal fills. Writing the search again in numpy would be
slower and untested in the wild; the library is the better-kept choice.

Its cost grows with the pixels it searches, so it never sees the whole image: nearby parts of
the hole are grouped, each group is filled inside a box of context around it, overlapping boxes
merge, and a box over `WORK_PIXELS` (or all boxes together over `TOTAL_PIXELS`) is filled at a
reduced scale and scaled back. Pixels outside the hole are always returned bit-identical.
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.rect import Box

METHODS = ("patchmatch", "telea", "ns")
DEFAULT_RADIUS = {"patchmatch": 3, "telea": 5, "ns": 5}
"""Radius each method measures best at (`bench/removal.py`; telea and ns as before)."""
_CV2_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}

CONTEXT = 48
"""Least context in px searched around each part of the hole; closer parts than twice it group."""
WORK_PIXELS = 500_000
"""Largest box PatchMatch searches at full scale: a box that is mostly hole takes ~5-10 s on one
core at radius 3 (`bench/removal.py`); a larger box is searched at a reduced scale."""
TOTAL_PIXELS = 2_000_000
"""Largest area all boxes of one fill search together (scaled down alike beyond it)."""
MAX_BOXES = 256
"""More groups than this are filled as one box around them all (scaled to `WORK_PIXELS`)."""
MAX_PATCH_RADIUS = 16
"""Largest PatchMatch patch radius: cost grows with the patch, past 16 for little gain."""

_SEED_LOCK = threading.Lock()  # PyPatchMatch keeps its seed in process-wide state


def patchmatch_available() -> bool:
    """True when PyPatchMatch and its compiled library can be loaded."""
    try:
        import patchmatch
    except ImportError:
        return False
    return bool(patchmatch.patchmatch_available)


def require_patchmatch():
    """The PyPatchMatch module, or a user error that says how to go on without it."""
    if not patchmatch_available():
        raise SdenhanceError(
            "the patchmatch fill needs PyPatchMatch with its compiled library",
            hint="pip install pypatchmatch, or use --method telea (or ns)",
        )
    import patchmatch

    return patchmatch


def fill_region(
    rgb: np.ndarray, region: np.ndarray, *, method: str, radius: int, seed: int = 0
) -> np.ndarray:
    """Fill `region` of `rgb` from the rest of the image; other pixels are returned untouched.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    region : ndarray of shape (H, W)
        Non-zero = fill. Must leave some pixel unselected to fill from.
    method : "patchmatch", "telea" or "ns"
    radius : int
        telea/ns: neighbourhood each pixel is estimated from, in px. patchmatch: the radius of
        the compared patches (``2 * radius + 1`` px square), at most `MAX_PATCH_RADIUS`.
    seed : int
        Seed of PatchMatch's random search (the other methods are deterministic).

    Returns
    -------
    ndarray of shape (H, W, 3), uint8, bit-identical to `rgb` where `region` is 0
    """
    # 1. Check inputs
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"fill_region takes (H, W, 3) uint8; got {rgb.shape} {rgb.dtype}")
    hole = np.asarray(region) > 0
    if hole.shape != rgb.shape[:2]:
        raise ValueError(f"region shape {hole.shape} does not match image {rgb.shape[:2]}")
    if method not in METHODS:
        raise SdenhanceError(f"unknown fill method `{method}`; use one of {', '.join(METHODS)}")
    if not 1 <= radius <= (MAX_PATCH_RADIUS if method == "patchmatch" else 64):
        raise SdenhanceError(f"fill `radius` {radius} is out of range for `{method}`")
    if not hole.any():
        return rgb.copy()
    if hole.all():
        raise SdenhanceError("the region to fill covers the whole image: nothing to fill from")

    # 2. Fill
    if method == "patchmatch":
        filled = _fill_patchmatch(rgb, hole, radius, seed)
    else:
        filled = cv2.inpaint(rgb, hole.astype(np.uint8) * 255, float(radius), _CV2_FLAGS[method])

    # 3. Exact outside the hole
    return np.where(hole[..., None], filled, rgb)


def _fill_patchmatch(rgb: np.ndarray, hole: np.ndarray, radius: int, seed: int) -> np.ndarray:
    """PatchMatch box by box (module docstring); later boxes see earlier boxes' fills."""
    pm = require_patchmatch()
    out = rgb.copy()
    boxes = work_boxes(hole)
    total = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
    share = min(1.0, TOTAL_PIXELS / total)
    for x0, y0, x1, y1 in boxes:
        area = (x1 - x0) * (y1 - y0)
        scale = min(1.0, math.sqrt(min(WORK_PIXELS, area * share) / area))
        box_hole = hole[y0:y1, x0:x1]
        if not box_hole.any() or box_hole.all():
            continue  # merged boxes can hold no hole; a box all hole is filled by a later one
        out[y0:y1, x0:x1] = _patchmatch_box(pm, out[y0:y1, x0:x1], box_hole, radius, seed, scale)
    return out


def _patchmatch_box(pm, image, hole, radius: int, seed: int, scale: float) -> np.ndarray:
    """One box filled by PyPatchMatch at `scale` (≤ 1) of its size, back at full size."""
    h, w = hole.shape
    small, small_hole = image, hole
    if scale < 1.0:
        size = (max(1, int(w * scale)), max(1, int(h * scale)))  # floor: within the budget
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # any hole pixel under a small pixel makes it hole: no object colour leaks in
        small_hole = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        if small_hole.all():
            small_hole = cv2.resize(hole.astype(np.uint8), size, cv2.INTER_NEAREST) > 0
    with _SEED_LOCK:
        pm.set_random_seed(seed)
        filled = pm.inpaint(small, small_hole.astype(np.uint8), patch_size=radius)
    if scale < 1.0:
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.where(hole[..., None], filled, image)


def work_boxes(hole: np.ndarray, context: int = CONTEXT) -> list[Box]:
    """Disjoint boxes that each hold a group of nearby hole parts with context around them.

    Parts closer than ``2 * context`` px group; each group's box reaches `context` px beyond it, or
    an eighth of the group's longer side when that is more, clipped to the image. Near context is
    the right source: with the whole photo to search, PatchMatch pastes the astronaut's face over
    the shuttle it removes (`bench/removal.py`). Overlapping boxes merge until none overlap. Beyond
    `MAX_BOXES` groups, one box holds them all.

    Returns
    -------
    list of (x0, y0, x1, y1), half-open, inside the image
    """
    h, w = hole.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * context + 1, 2 * context + 1))
    near = cv2.dilate(hole.astype(np.uint8), kernel)
    count, _, stats, _ = cv2.connectedComponentsWithStats(near, connectivity=8)
    if count - 1 > MAX_BOXES:
        ys, xs = np.nonzero(near)
        return [(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)]
    boxes = []
    for x, y, bw, bh, _ in stats[1:]:
        side = max(int(bw), int(bh)) - 2 * context  # the group's own extent, about
        extra = max(0, side // 8 - context)
        boxes.append(
            (max(0, x - extra), max(0, y - extra), min(w, x + bw + extra), min(h, y + bh + extra))
        )
    return _merge_overlapping(boxes)


def _merge_overlapping(boxes: list[Box]) -> list[Box]:
    """Replace every set of overlapping boxes by their bounding box, until none overlap."""
    arr = np.array(boxes, dtype=np.int64).reshape(-1, 4)
    while len(arr) > 1:
        x0, y0, x1, y1 = arr.T
        overlap = (np.minimum(x1[:, None], x1) > np.maximum(x0[:, None], x0)) & (
            np.minimum(y1[:, None], y1) > np.maximum(y0[:, None], y0)
        )
        groups = _components(overlap)
        if len(groups) == len(arr):
            break
        arr = np.array(
            [(arr[g, 0].min(), arr[g, 1].min(), arr[g, 2].max(), arr[g, 3].max()) for g in groups],
            dtype=np.int64,
        )
    return [tuple(int(v) for v in b) for b in arr]


def _components(adjacent: np.ndarray) -> list[np.ndarray]:
    """Index groups of the connected components of a symmetric boolean adjacency matrix."""
    n = len(adjacent)
    label = np.full(n, -1)
    groups = []
    for start in range(n):
        if label[start] >= 0:
            continue
        members, frontier = {start}, [start]
        while frontier:
            i = frontier.pop()
            for j in np.nonzero(adjacent[i])[0]:
                if int(j) not in members:
                    members.add(int(j))
                    frontier.append(int(j))
        label[list(members)] = len(groups)
        groups.append(np.array(sorted(members)))
    return groups
