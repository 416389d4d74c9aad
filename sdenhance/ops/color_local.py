"""Local colour map: undo colour drift at every scale while keeping an output's new detail.

Diffusion drift is often multiplicative (a gain per channel, more saturation or contrast, a
darker tone curve), so it changes an output's middle and fine frequencies too. Swapping only the
lowest band of an output for the reference's (the `wavelet` fix) leaves that part in place, and
swapping a finer band would also swap away the detail the diffusion added. Here the drift is
modelled instead: a smooth, locally varying affine colour map (a 3×3 matrix and an offset per
pixel, cross-channel so saturation is covered) that takes the reference's colours to the
output's, fitted where both are free of new detail, inverted, and applied to every pixel of the
output, detail included.

1. **Fit grid.** Both images are averaged down (pixel areas, `cv2.INTER_AREA`) to a grid of the
   output's size / `DETAIL_SCALE`, or the reference's size when that is smaller, so the fit sees
   colours and structure but not the 1–3 px detail diffusion invents. The output is averaged
   to a smaller reference's size on the way, so both grids are blurred alike.
2. **Global map.** A least-squares affine fit over the whole grid, ridge-regularised towards
   the identity, is the prior of every local fit.
3. **Local maps.** The same fit in every (2·`RADIUS` + 1)² window of the grid, computed with box
   filters as in the guided filter (He et al., 2013), but regularised towards the global map
   instead of towards zero, so a flat window keeps the global correction and its detail.
   The fit runs *forwards*, output ≈ F·reference + c, because content the output has and the
   reference lacks (new detail) then only adds scatter, whereas a backwards fit would shrink its
   slope and flatten that content. Each map is inverted, its deviation from the global map
   bounded (a window where the output is clipped flat must not amplify), and the maps are
   averaged over the windows that cover each grid pixel (the guided filter's second pass).
4. **Apply.** The maps are interpolated bilinearly to the output's size and applied to every
   output pixel: colour and detail are mapped together.
5. **Residual swap.** What still differs between the reference and the mapped output on the grid
   (non-affine curves, clipping) is low-passed (Gaussian of `RESIDUAL_SIGMA` grid px) and added.

Weights (masks) enter as in the rest of `ops.color`: grid averages are weighted means, a grid
pixel's weight in the fit is the product of the two images' coverage there, and the residual is
measured in each image's own region by normalised convolution, so pixels of weight 0 have no say.
Pure numpy/OpenCV; the grid work is float64, the full-size work float32. OpenCV's own guided
filter (`cv2.ximgproc`, only in opencv-contrib) returns filtered images, not the coefficient
maps needed here, and takes no prior or weights; its building blocks (box filters, area and
bilinear resampling) are OpenCV's here too.
"""

from __future__ import annotations

import numpy as np

# Fine detail invented by diffusion is 1–3 px; 4×4 averages leave little of it in the fit.
DETAIL_SCALE = 4
# The fit grid is capped (time and memory); past it the grid is coarser than DETAIL_SCALE.
MAX_GRID_PIXELS = 1 << 20
# Window half-size in grid px (9×9 windows = 36×36 output px): drift varies over tiles of 256+
# px, while tone curves (gamma, clipping) need windows small enough to be locally affine.
RADIUS = 4
# Ridge towards the prior map, in colour variance units ([0, 1] scale): a window whose colour
# spread is below ~0.01 (2.5 levels of 8 bit) is mostly explained by the prior.
EPS = 1e-4
# Ridge of the global fit towards the identity (only decides degenerate images).
GLOBAL_EPS = 1e-6
# Each fit is solved twice, the second time with the ridge grown by KAPPA × what the first left
# unexplained: where the output's content in a window is unrelated to the reference's (new
# objects), its slope is noise and the map stays near the prior.
KAPPA = 1.0
# Bounds on the maps, as Frobenius distances: the global map from the identity, each local map
# from the global one, and every map from the identity. The last is below 1, so every map stays
# invertible and flips no channel (its singular values lie within 1 ± 0.9): where the output
# lost contrast the reference has (clipped flat), a map cannot blow up what little is left.
GLOBAL_BOUND = 0.75
LOCAL_BOUND = 0.5
MAX_BOUND = 0.9
# Low-pass of the remaining difference, in grid px (8 output px at DETAIL_SCALE 4).
RESIDUAL_SIGMA = 2.0
# Pull of the region's mean where a weighted average has no weight in reach.
_FILL_WEIGHT = 1e-6


def fit_grid(image_hw: tuple[int, int], reference_hw: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the fit grid for an image and a reference of these sizes."""
    h, w = image_hw
    gh = min(reference_hw[0], max(1, round(h / DETAIL_SCALE)))
    gw = min(reference_hw[1], max(1, round(w / DETAIL_SCALE)))
    if gh * gw > MAX_GRID_PIXELS:
        f = np.sqrt(gh * gw / MAX_GRID_PIXELS)
        gh, gw = max(1, int(gh / f)), max(1, int(gw / f))
    return int(gh), int(gw)


def local_color_map(
    image: np.ndarray,
    reference: np.ndarray,
    image_weights: np.ndarray | None = None,
    reference_weights: np.ndarray | None = None,
) -> np.ndarray:
    """`image` with its colours mapped to those of `reference` by steps 1–5 of the module.

    Parameters
    ----------
    image : ndarray of shape (H, W, C), C 1 or 3
        Float colours of the output, [0, 1].
    reference : ndarray of shape (H2, W2, C)
        Float colours of the reference, any size, same channel count.
    image_weights, reference_weights : ndarray of shape (H, W) / (H2, W2), optional
        Where each image is measured, in [0, 1]; not all zero. None: everywhere.

    Returns
    -------
    ndarray of shape (H, W, C), float32, not clipped
    """
    img = np.asarray(image, dtype=np.float32)
    h, w, c = img.shape
    grid = fit_grid((h, w), reference.shape[:2])
    # a smaller reference: the image goes through its size, so both are averaged alike
    via = (min(h, reference.shape[0]), min(w, reference.shape[1]))

    # 1. Fit grid: weighted averages and how much of each grid pixel each image covers
    out_g, cover_out = _reduce(img, image_weights, grid, via)
    ref_g, cover_ref = _reduce(reference, reference_weights, grid)
    pair = cover_out * cover_ref

    # 2. Global map, the prior
    eye = np.eye(c)[..., None, None]
    fallback = _mean(ref_g, cover_ref) - _mean(out_g, cover_out)
    a0 = _bound(_fit(ref_g, out_g, pair, None, eye, GLOBAL_EPS), eye, GLOBAL_BOUND)
    b0 = _offset(a0, ref_g, out_g, pair, None, fallback)

    # 3. Local maps, bounded, averaged over the windows covering each grid pixel
    a = _fit(ref_g, out_g, pair, RADIUS, _inverse(a0), EPS)
    a = _bound(_bound(a, a0, LOCAL_BOUND), eye, MAX_BOUND)
    b = _box_mean(_offset(a, ref_g, out_g, pair, RADIUS, b0), RADIUS)
    a = _box_mean(a, RADIUS)

    # 4. Apply to every pixel of the image
    mapped = _apply(img, a, b)

    # 5. Swap the low-passed difference that remains
    mapped_g, _ = _reduce(mapped, image_weights, grid, via)
    residual = _lowpass(ref_g, cover_ref) - _lowpass(mapped_g, cover_out)
    for i in range(c):
        mapped[..., i] += _upsample(residual[i], (h, w))
    return mapped


# ----------------------------------------------------------------------------------------------
# steps. Grid images are planes (C, gh, gw), maps are fields of matrices (C, C, gh, gw): every
# operation then runs over whole contiguous planes. Float64: sums of squares lose little.


def _reduce(
    x: np.ndarray,
    weights: np.ndarray | None,
    grid: tuple[int, int],
    via: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted pixel-area means of (H, W, C) `x` on the grid as planes, and the mean weight;
    averaged to the size `via` first when given."""
    import cv2

    gh, gw = grid
    c = x.shape[2]
    steps = [(gw, gh)] if via in (None, x.shape[:2], grid) else [via[::-1], (gw, gh)]

    def area(v: np.ndarray) -> np.ndarray:
        for size in steps:
            v = cv2.resize(v, size, interpolation=cv2.INTER_AREA)
        return v

    src = np.asarray(x, dtype=np.float32)
    if weights is None:
        means = area(src).reshape(gh, gw, c)
        return np.moveaxis(means.astype(np.float64), -1, 0).copy(), np.ones(grid)
    wt = np.asarray(weights, dtype=np.float32)
    num = area(src * wt[..., None]).reshape(gh, gw, c)
    cover = area(wt).reshape(gh, gw).astype(np.float64)
    means = np.where(cover > 0, np.moveaxis(num, -1, 0) / np.maximum(cover, 1e-30), 0.0)
    return means, cover


def _sums(x: np.ndarray, radius: int | None) -> np.ndarray:
    """Sums over each grid pixel's window (the part inside the grid), over the last two axes;
    over the whole grid (kept as 1×1) when `radius` is None."""
    import cv2

    if radius is None:
        return x.sum(axis=(-2, -1), keepdims=True)
    k = 2 * radius + 1
    flat = x.reshape(-1, *x.shape[-2:])
    out = np.empty_like(flat)
    for i, plane in enumerate(flat):
        out[i] = cv2.boxFilter(
            plane, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT
        ).reshape(plane.shape)
    return out.reshape(x.shape)


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    radius: int | None,
    prior: np.ndarray,
    eps: float,
) -> np.ndarray:
    """Weighted ridge fit y ≈ F·x + c per window, F pulled to `prior`; returns F⁻¹, the map
    from y back to x.

    `eps` is in variance units: the ridge is eps × the window's pixel count, so a window's data
    outweighs the prior once its (weighted) spread passes √eps.
    """
    c = x.shape[0]
    n = _sums(np.ones_like(weights), radius)
    s = _sums(weights, radius)
    safe = np.maximum(s, 1e-300)
    wx, wy = x * weights, y * weights
    sx, sy = _sums(wx, radius), _sums(wy, radius)
    # centred weighted sums of products: cxx[i, j] of x_i x_j, cxy[i, j] of x_i y_j
    cxx = _sums(wx[:, None] * x[None, :], radius) - sx[:, None] * sx[None, :] / safe
    cxy = _sums(wx[:, None] * y[None, :], radius) - sx[:, None] * sy[None, :] / safe
    syy = _sums(wy * y, radius) - sy * sy / safe
    eye = np.eye(c)[..., None, None]
    prior_t = np.swapaxes(prior, 0, 1)
    # (Cxx + ridge) Fᵀ = Cxy + ridge · priorᵀ  (Fᵀ[i, j]: weight of x_i in y_j)
    ridge = eps * n
    ft = _matmul(_inverse(cxx + ridge * eye), cxy + ridge * prior_t)
    if KAPPA > 0:
        # again, with the ridge grown by what the first fit leaves unexplained
        rss = syy.sum(axis=0) - 2 * np.sum(ft * cxy, axis=(0, 1))
        rss += np.sum(ft * _matmul(cxx, ft), axis=(0, 1))
        ridge = ridge + KAPPA * s * np.maximum(rss, 0.0) / (c * safe)
        ft = _matmul(_inverse(cxx + ridge * eye), cxy + ridge * prior_t)
    return _inverse(np.swapaxes(ft, 0, 1))


def _offset(
    a: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    radius: int | None,
    fallback: np.ndarray,
) -> np.ndarray:
    """b with mean(x) = a·mean(y) + b over each window's weight; `fallback` where none."""
    s = _sums(weights, radius)
    sx, sy = _sums(x * weights, radius), _sums(y * weights, radius)
    ay = np.einsum("ij...,j...->i...", a, sy)
    return (sx - ay + _FILL_WEIGHT * fallback) / (s + _FILL_WEIGHT)


def _bound(a: np.ndarray, centre: np.ndarray, limit: float) -> np.ndarray:
    """`a` moved towards `centre` until their Frobenius distance is at most `limit`; `centre`
    where `a` is not finite (a singular fit)."""
    d = np.where(np.isfinite(a).all(axis=(0, 1)), a - centre, 0.0)
    norm = np.sqrt(np.sum(d * d, axis=(0, 1)))
    return centre + d * np.minimum(1.0, limit / np.maximum(norm, 1e-300))


def _apply(img: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a·img + b per pixel, the grid maps interpolated to the image size one plane at a time."""
    h, w, c = img.shape
    out = np.empty_like(img)
    for i in range(c):
        acc = _upsample(b[i], (h, w))
        for j in range(c):
            acc += _upsample(a[i, j], (h, w)) * img[..., j]
        out[..., i] = acc
    return out


def _lowpass(x: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Normalised Gaussian low-pass of grid planes by their coverage, filling towards the
    region's mean where no covered pixel is in reach."""
    import cv2

    def blur(v: np.ndarray) -> np.ndarray:
        out = cv2.GaussianBlur(v, (0, 0), RESIDUAL_SIGMA, borderType=cv2.BORDER_CONSTANT)
        return out.reshape(v.shape)

    num = np.stack([blur(p * cover) for p in x]) + _FILL_WEIGHT * _mean(x, cover)
    return num / (blur(cover) + _FILL_WEIGHT)


# ----------------------------------------------------------------------------------------------
# small helpers


def _box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over each grid pixel's window, the part of it inside the grid."""
    return _sums(x, radius) / _sums(np.ones(x.shape[-2:]), radius)


def _mean(x: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Cover-weighted mean of each plane, as (C, 1, 1); 0 without cover."""
    total = cover.sum()
    if total <= 0:
        return np.zeros((x.shape[0], 1, 1))
    return (x * cover).sum(axis=(-2, -1), keepdims=True) / total


def _upsample(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of one grid plane to (H, W), float32."""
    import cv2

    h, w = hw
    src = np.ascontiguousarray(x, dtype=np.float32)
    return cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of two fields of matrices (C, C, ...)."""
    return np.einsum("ik...,kj...->ij...", a, b)


def _inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of a field of 1×1 or 3×3 matrices (closed form; batched LAPACK is far slower).
    Singular matrices give non-finite entries."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if m.shape[0] == 1:
            return 1.0 / m
        (a, b, c), (d, e, f), (g, h, i) = m
        co = (e * i - f * h, f * g - d * i, d * h - e * g)
        det = a * co[0] + b * co[1] + c * co[2]
        adj = np.array(
            [
                [co[0], c * h - b * i, b * f - c * e],
                [co[1], a * i - c * g, c * d - a * f],
                [co[2], b * g - a * h, a * e - b * d],
            ]
        )
        return adj / det
