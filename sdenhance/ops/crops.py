"""Crop geometry around masks (boxes at a multiple, grouped regions), the bit-exact paste back."""

from __future__ import annotations

import math

import numpy as np

from sdenhance.errors import SdenhanceError
from sdenhance.ops.masks import Box, bbox, labelled


def _ceil_to(value: float, multiple: int) -> int:
    # a hair below so 512.0000000001 (float noise) does not become 520
    return max(multiple, math.ceil(value / multiple - 1e-9) * multiple)


def _place(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    """A span of `size` centred on [lo, hi), shifted (not shrunk) to lie inside [0, limit)."""
    if size >= limit:
        return 0, limit
    start = (lo + hi - size) // 2
    start = min(max(start, 0), limit - size)
    return start, start + size


def _fit(
    box: Box, padding: int, aspect: float, multiple: int, image_size: tuple[int, int], min_size: int
) -> Box:
    x0, y0, x1, y1 = box
    need_w = max(x1 - x0 + 2 * padding, min_size)
    need_h = max(y1 - y0 + 2 * padding, min_size)
    h = max(float(need_h), need_w / aspect)
    w = h * aspect
    width, height = image_size
    bx0, bx1 = _place(x0, x1, _ceil_to(w, multiple), width)
    by0, by1 = _place(y0, y1, _ceil_to(h, multiple), height)
    return bx0, by0, bx1, by1


def _check_box_args(
    mask: np.ndarray,
    padding: int,
    aspect: float,
    multiple: int,
    image_size: tuple[int, int],
    min_size: int,
) -> None:
    if padding < 0 or min_size < 0 or multiple < 1 or not aspect > 0:
        raise ValueError(
            f"need padding ≥ 0, min_size ≥ 0, multiple ≥ 1, aspect > 0; got {padding}, "
            f"{min_size}, {multiple}, {aspect}"
        )
    if np.shape(mask) != (image_size[1], image_size[0]):
        raise ValueError(f"mask shape {np.shape(mask)} does not match image size {image_size}")


def crop_box(
    mask: np.ndarray,
    *,
    padding: int,
    aspect: float = 1.0,
    multiple: int = 8,
    image_size: tuple[int, int],
    min_size: int = 0,
) -> Box:
    """The crop that processes the mask at the model's native shape ("only masked" inpainting).

    The mask's bounding box plus `padding` on every side (context for the model), at least
    `min_size` per side, widened on one axis to the model's aspect w/h, rounded up to a multiple
    of `multiple` per side, centred on the mask, then shifted (never shrunk) to lie inside the
    image. Guarantees: the box holds (bbox + padding) ∩ image; each side is a multiple of
    `multiple` and ``|w - aspect·h| < multiple·max(1, aspect)`` (exactly w = h for aspect 1),
    except on an axis where the image is smaller than that: there the box is the whole axis.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Must select something.
    padding, min_size, multiple : int
        Pixels.
    aspect : float
        Width / height of the model's native resolution (1.0 for 512×512).
    image_size : (W, H)

    Returns
    -------
    (x0, y0, x1, y1) : half-open box inside the image
    """
    _check_box_args(mask, padding, aspect, multiple, image_size, min_size)
    found = bbox(mask)
    if found is None:
        raise SdenhanceError("mask selects nothing")
    return _fit(found, padding, aspect, multiple, image_size, min_size)


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _padded_overlap(a: Box, b: Box, padding: int) -> bool:
    return (
        a[0] - padding < b[2] + padding
        and b[0] - padding < a[2] + padding
        and a[1] - padding < b[3] + padding
        and b[1] - padding < a[3] + padding
    )


MAX_REGIONS = 256


def crop_groups(
    mask: np.ndarray,
    *,
    padding: int,
    aspect: float = 1.0,
    multiple: int = 8,
    image_size: tuple[int, int],
    min_size: int = 0,
) -> list[tuple[Box, np.ndarray]]:
    """Crops for a mask of several regions, each with the mask of its own regions only.

    Two groups (starting from the 8-connected regions) are merged when

    - their padded boxes overlap: their repainted areas and blend ramps could touch, and two
      separate generations meeting there would leave a seam; or
    - the crop around both is no larger in area than their two crops together. Each crop is
      resampled to the model's native size, so area is both the work at a given zoom and the
      inverse of the detail the crop gets: such a merge never adds pixels to process, and the
      merged crop's side is at most √2 times the larger crop's (a small region beside a large
      one shares the large one's zoom), while far-apart regions keep their own tight, detailed
      crops instead of one huge crop of mostly untouched image.

    Merging repeats until no pair qualifies. A crop may still hold a piece of another group's
    region (crops may overlap outside the padded boxes): repaint and blend each crop with its
    own group's mask, in turn, each from the previous result. More than `MAX_REGIONS` regions
    (speckle, not objects) get one crop around all.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
    padding, aspect, multiple, image_size, min_size
        As in `crop_box`.

    Returns
    -------
    list of ((x0, y0, x1, y1), ndarray of shape (y1-y0, x1-x0), float32)
        Sorted top to bottom, then left to right; each box obeys `crop_box`'s guarantees and
        its mask is `mask` inside the box, zero outside the group's regions.
    """
    _check_box_args(mask, padding, aspect, multiple, image_size, min_size)
    mask = np.asarray(mask, dtype=np.float32)
    labels, regions = labelled(mask)
    if not regions:
        raise SdenhanceError("mask selects nothing")

    def fit(box: Box) -> Box:
        return _fit(box, padding, aspect, multiple, image_size, min_size)

    if len(regions) > MAX_REGIONS:
        whole = fit(bbox(mask))  # type: ignore[arg-type]
        return [(whole, crop(mask, whole))]

    # Every group in `done` has been checked against every other: no pair there qualifies.
    # A merge sends the union back to `pending`, so the check is redone against all of `done`.
    Group = tuple[Box, int, tuple[int, ...]]  # bbox, area of its crop, region labels
    done: list[Group] = []
    pending: list[Group] = [(r, _area(fit(r)), (k + 1,)) for k, r in enumerate(regions)][::-1]
    while pending:
        box, cost, members = pending.pop()
        for k, (other, other_cost, other_members) in enumerate(done):
            union = _union(box, other)
            union_cost = _area(fit(union))
            if _padded_overlap(box, other, padding) or union_cost <= cost + other_cost:
                del done[k]
                pending.append((union, union_cost, members + other_members))
                break
        else:
            done.append((box, cost, members))

    out = []
    for box, _, members in done:
        crop_at = fit(box)
        own = np.isin(crop(labels, crop_at), members)
        out.append((crop_at, np.where(own, crop(mask, crop_at), np.float32(0))))
    return sorted(out, key=lambda item: (item[0][1], item[0][0], item[0][3], item[0][2]))


def crop_boxes(
    mask: np.ndarray,
    *,
    padding: int,
    aspect: float = 1.0,
    multiple: int = 8,
    image_size: tuple[int, int],
    min_size: int = 0,
) -> list[Box]:
    """The boxes of `crop_groups` (see there for when regions share a crop and why)."""
    groups = crop_groups(
        mask,
        padding=padding,
        aspect=aspect,
        multiple=multiple,
        image_size=image_size,
        min_size=min_size,
    )
    return [box for box, _ in groups]


def _check_box(box: Box, shape: tuple[int, ...]) -> None:
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]):
        raise ValueError(f"box {box} is empty or outside an array of shape {shape}")


def crop(arr: np.ndarray, box: Box) -> np.ndarray:
    """A copy of `arr` (shape (H, W) or (H, W, C)) inside the half-open `box`."""
    _check_box(box, arr.shape)
    x0, y0, x1, y1 = box
    return arr[y0:y1, x0:x1].copy()


def _blend(dst: np.ndarray, patch: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``dst·(1-m) + patch·m``, bit-identical to dst where m == 0 and to patch where m == 1."""
    m = np.asarray(m, dtype=np.float64)
    if m.shape != dst.shape[:2]:
        raise ValueError(f"blend mask shape {m.shape} does not match {dst.shape[:2]}")
    if m.size and not (m.min() >= 0.0 and m.max() <= 1.0):
        raise ValueError("blend mask values must lie in [0, 1]")
    weight = m if dst.ndim == 2 else m[..., None]
    mixed = dst.astype(np.float64) * (1.0 - weight) + patch.astype(np.float64) * weight
    if np.issubdtype(dst.dtype, np.integer):
        info = np.iinfo(dst.dtype)
        mixed = np.clip(np.rint(mixed), info.min, info.max)
    keep = m > 0 if dst.ndim == 2 else (m > 0)[..., None]
    return np.where(keep, mixed.astype(dst.dtype), dst)


def paste(
    dst: np.ndarray, patch: np.ndarray, box: Box, blend_mask: np.ndarray | None = None
) -> np.ndarray:
    """`dst` with `patch` put back into `box`, optionally blended (a new array; dst is unchanged).

    Parameters
    ----------
    dst : ndarray of shape (H, W) or (H, W, C)
    patch : ndarray of shape (y1-y0, x1-x0[, C]), same dtype as dst
    box : (x0, y0, x1, y1)
    blend_mask : ndarray of shape (y1-y0, x1-x0), optional
        Weights in [0, 1] of the patch. Where it is 0 the result is bit-identical to dst (the
        mixed value is only used where m > 0; integer images are rounded there alone); where it
        is 1 it is bit-identical to the patch. None replaces the whole box.

    Returns
    -------
    ndarray like dst
    """
    _check_box(box, dst.shape)
    x0, y0, x1, y1 = box
    if patch.shape != (y1 - y0, x1 - x0, *dst.shape[2:]):
        raise ValueError(f"patch shape {patch.shape} does not fit box {box} of {dst.shape}")
    if patch.dtype != dst.dtype:
        raise ValueError(f"patch dtype {patch.dtype} differs from dst dtype {dst.dtype}")
    out = dst.copy()
    if blend_mask is None:
        out[y0:y1, x0:x1] = patch
    else:
        out[y0:y1, x0:x1] = _blend(dst[y0:y1, x0:x1], patch, blend_mask)
    return out


def composite_exact(
    original_u8: np.ndarray, generated_u8: np.ndarray, blend_mask: np.ndarray
) -> np.ndarray:
    """Final inpainting composite: ``original·(1-m) + generated·m``, rounded to uint8.

    Every pixel where the blend mask is 0 is bit-identical to the original (and where it is 1,
    to the generated image): the promise that unmasked pixels are never degraded.

    Parameters
    ----------
    original_u8, generated_u8 : ndarray of shape (H, W, C), uint8
    blend_mask : ndarray of shape (H, W), float in [0, 1]

    Returns
    -------
    ndarray of shape (H, W, C), uint8
    """
    if original_u8.dtype != np.uint8 or generated_u8.dtype != np.uint8:
        raise ValueError(
            f"composite_exact takes uint8 images; got {original_u8.dtype} and {generated_u8.dtype}"
        )
    if original_u8.shape != generated_u8.shape:
        raise ValueError(f"image shapes differ: {original_u8.shape} vs {generated_u8.shape}")
    return _blend(original_u8, generated_u8, blend_mask)
