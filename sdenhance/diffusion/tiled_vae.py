"""Tiled VAE encode/decode whose GroupNorms see the whole image, so tiles leave no tone steps.

Memory on the device follows the tile: the VAE runs one tile at a time (plus a halo of neighbouring
values as wide as one layer's convolutions reach), and each layer's output is assembled into a
whole-image map (`canvas.Canvases`) that waits on the device when it fits, else in the host's
memory, else in a temporary file (so RAM stays bounded too). So every GroupNorm normalises with the
statistics of the whole image, as Tiled VAE's exact mode does, every convolution sees the same
pixels as without tiling, and the mid-block attention attends over every pixel: tiled equals untiled
up to float rounding."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from sdenhance.diffusion.canvas import Canvas, Canvases
from sdenhance.diffusion.vae_programs import check_supported, decoder, encoder
from sdenhance.errors import SdenhanceError
from sdenhance.ops import tiling
from sdenhance.ops.sizes import LATENT_FACTOR

if TYPE_CHECKING:
    import torch

MAP_VALUES_PER_PIXEL = 2 * 128  # the widest layer keeps 2 maps of 128 channels at full size


@contextlib.contextmanager
def vae_precision(vae: Any, dtype: Any) -> Iterator[Any]:
    """The dtype to run `vae` in: fp32 when it is fp16 and its config says `force_upcast` (the
    original SDXL VAE overflows in fp16, as diffusers' pipelines also assume), cast back after.
    fp16 -> fp32 -> fp16 is exact, so the shared VAE ends as it was."""
    import torch

    if dtype != torch.float16 or not getattr(vae.config, "force_upcast", False):
        yield dtype
        return
    vae.to(dtype=torch.float32)
    try:
        yield torch.float32
    finally:
        vae.to(dtype=torch.float16)


def vae_grid(width: int, height: int, max_tile: int) -> list[tiling.Tile]:
    """Tiles in latent cells of at most `max_tile` px over a `width`×`height` px image, evenly
    sized and side by side (exactness needs no overlap: halos give each tile its context)."""
    f = LATENT_FACTOR
    lw, lh, cells = width // f, height // f, max(1, max_tile // f)
    tw, th = tiling.fit_tile(lw, cells, 0), tiling.fit_tile(lh, cells, 0)
    return tiling.tile_grid(lw, lh, tw, th, 0)


def map_bytes(width: int, height: int, itemsize: int) -> int:
    """Memory the whole-image maps of an SD VAE take at their widest (2 maps of 128 channels
    at full resolution), for a `width`×`height` px image."""
    return width * height * MAP_VALUES_PER_PIXEL * itemsize


class MapStore:
    """Where whole-image maps wait: a CUDA device, the host's memory, or an unnamed temporary
    file (mapped into memory, so RAM stays bounded; the system deletes it when it is closed)."""

    def __init__(self, where: Any) -> None:
        self.where = where  # a torch device, or "disk"

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> torch.Tensor:
        import tempfile

        import torch

        if self.where != "disk":
            return torch.zeros(shape, dtype=dtype, device=self.where)
        size = torch.empty((), dtype=dtype).element_size()
        raw = np.memmap(
            tempfile.TemporaryFile(), np.uint8, "w+", shape=(int(np.prod(shape)) * size,)
        )
        return torch.from_numpy(raw).view(dtype).view(shape)


def choose_store(device: Any, need: int) -> MapStore:
    """The device when the maps fit in half of its free memory (CUDA), else the host when they
    fit in half of the free RAM, else a temporary file when the disk has room; else refused."""
    import shutil
    import tempfile

    import psutil
    import torch

    if device is not None and torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        if need <= free // 2:
            return MapStore(torch.device(device))
    if need <= psutil.virtual_memory().available // 2:
        return MapStore(torch.device("cpu"))
    folder = tempfile.gettempdir()
    if need <= shutil.disk_usage(folder).free // 2:
        return MapStore("disk")
    raise SdenhanceError(
        f"the VAE needs about {need / 2**30:.1f} GiB for this image, more than half of the free "
        f"memory or of the free space in {folder}",
        hint="free some space (or point TMPDIR at a larger disk), or upscale less at once",
    )


def canvases(width: int, height: int, tile: int, *, device: Any, dtype: Any) -> Canvases:
    """The tiled runner over a `width`×`height` px image in tiles of at most `tile` px."""
    import torch

    itemsize = torch.empty((), dtype=dtype).element_size()
    store = choose_store(device, map_bytes(width, height, itemsize))
    return Canvases(vae_grid(width, height, tile), device=device, dtype=dtype, store=store)


def vae_encode(vae: Any, image: np.ndarray, *, tile: int, device=None, dtype=None) -> torch.Tensor:
    """Encode (H, W, 3) [0,1] (sides multiples of 8) to scaled latents (1, C, H/8, W/8) float32:
    the latent distribution's mode, in tiles of at most `tile` px."""
    import torch

    check_supported(vae)
    h, w = image.shape[:2]
    run = canvases(w, h, tile, device=device, dtype=dtype or vae.dtype)
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None] * 2.0 - 1.0
    with torch.no_grad():
        moments = encoder(run, vae, Canvas(pixels, LATENT_FACTOR)).data
    mean = moments[:, : vae.config.latent_channels].float().cpu()
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (mean - shift) * vae.config.scaling_factor


def vae_decode(
    vae: Any, latents: torch.Tensor, *, tile: int, device=None, dtype=None
) -> np.ndarray:
    """Decode scaled latents (1, C, h, w) to (8h, 8w, 3) in [0,1], in tiles of at most `tile`
    px."""
    import torch

    check_supported(vae)
    f = LATENT_FACTOR
    _, _, lh, lw = latents.shape
    run = canvases(lw * f, lh * f, tile, device=device, dtype=dtype or vae.dtype)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    z = latents.float().cpu() / vae.config.scaling_factor + shift
    with torch.no_grad():
        x = decoder(run, vae, Canvas(z, 1)).data
    x = ((x.float().cpu()[0] + 1.0) / 2.0).clamp(0, 1).numpy().transpose(1, 2, 0)
    if not np.isfinite(x).all():
        raise SdenhanceError(
            "the VAE produced NaNs (fp16 overflow)",
            hint="use --dtype fp32 or bf16, or an fp16-safe VAE",
        )
    return np.ascontiguousarray(x)
