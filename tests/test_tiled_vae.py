"""The tiled VAE: whole-image GroupNorm statistics, halos and exact attention make tiled
encode/decode equal untiled ones up to float rounding, whatever the tile size.

Compared with diffusers' own untiled `encode`/`decode` on a real photo, and with diffusers'
`enable_tiling` (independent tiles, each normalised over itself, linearly blended) on the same
input and tile size.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from sdenhance import SdenhanceError
from sdenhance.diffusion import canvas as canvas_mod
from sdenhance.diffusion import tiled_vae
from sdenhance.diffusion.tiled_vae import vae_decode, vae_encode
from sdenhance.ops import tiling

TIGHT = 5e-5  # float32 rounding of a different summation order, on values of order 1


def tiny_vae(attention: bool):
    """The tiny model's VAE (real ×8 architecture, narrow), with or without mid attention."""
    from diffusers import AutoencoderKL

    torch.manual_seed(1)
    return AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
        mid_block_add_attention=attention,
    ).eval()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo, 192×256 (sides multiples of 8), in [0, 1]."""
    image = Image.fromarray(data.astronaut()).resize((256, 192), Image.Resampling.LANCZOS)
    return np.asarray(image, np.float32) / 255.0


def untiled(vae, image: np.ndarray):
    """diffusers' own encode (the mode, scaled) and decode of that latent, untiled."""
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None] * 2 - 1
    with torch.no_grad():
        latents = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    return latents, to_image(decoded)


def to_image(x: torch.Tensor) -> np.ndarray:
    return ((x[0].float() + 1) / 2).clamp(0, 1).numpy().transpose(1, 2, 0)


def diffusers_tiled(vae, image: np.ndarray, latents: torch.Tensor):
    """diffusers' `enable_tiling` at the tiny VAE's sample size (64 px tiles, 16 px overlap)."""
    tiled = copy.deepcopy(vae)
    tiled.enable_tiling()
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None] * 2 - 1
    with torch.no_grad():
        lat = tiled.encode(x).latent_dist.mode() * vae.config.scaling_factor
        out = tiled.decode(latents / vae.config.scaling_factor).sample
    return lat, to_image(out)


@pytest.mark.parametrize("attention", [False, True], ids=["no-attention", "attention"])
@pytest.mark.parametrize("tile", [64, 96, 40])
def test_tiled_equals_untiled(photo, attention, tile):
    vae = tiny_vae(attention)
    ref_latents, ref_image = untiled(vae, photo)
    latents = vae_encode(vae, photo, tile=tile)
    image = vae_decode(vae, ref_latents, tile=tile)
    assert latents.shape == ref_latents.shape and image.shape == ref_image.shape
    assert (latents - ref_latents).abs().max().item() < TIGHT
    assert np.abs(image - ref_image).max() < TIGHT


def test_no_worse_than_diffusers_tiling_with_attention(photo):
    """Same input, same 64 px tiles: diffusers' independent tiles drift (tone steps); ours
    does not, by orders of magnitude."""
    vae = tiny_vae(attention=True)
    ref_latents, ref_image = untiled(vae, photo)
    their_latents, their_image = diffusers_tiled(vae, photo, ref_latents)
    our_latents = vae_encode(vae, photo, tile=64)
    our_image = vae_decode(vae, ref_latents, tile=64)
    ours = (np.abs(our_image - ref_image).mean(), (our_latents - ref_latents).abs().mean())
    theirs = (np.abs(their_image - ref_image).mean(), (their_latents - ref_latents).abs().mean())
    assert theirs[0] > 1e-3 and theirs[1] > 1e-3  # the comparison is not vacuous
    assert ours[0] <= theirs[0] / 100 and ours[1] <= theirs[1] / 100


def test_many_tiles_are_really_used(photo, monkeypatch):
    """Control: the bound above holds with many small tiles, not one tile over everything."""
    seen = []
    real = canvas_mod.Canvases.map

    def spy(self, fn, inputs, **kw):
        seen.append(len(self.cores))
        return real(self, fn, inputs, **kw)

    monkeypatch.setattr(canvas_mod.Canvases, "map", spy)
    vae_decode(tiny_vae(True), torch.zeros(1, 4, 24, 32), tile=64)
    assert min(seen) == 12  # 3 × 4 tiles of 8 latent cells


@pytest.mark.parametrize("overlap", [0, 6])
def test_owned_parts_partition_the_grid(overlap):
    cores = tiling.tile_grid(50, 30, 20, 16, overlap)
    owned = canvas_mod.owners(cores)
    count = np.zeros((30, 50), int)
    for core, part in zip(cores, owned, strict=True):
        count[part.slices] += 1
        assert core.x0 <= part.x0 and part.x1 <= core.x1 and core.y0 <= part.y0
    assert (count == 1).all()


def test_an_unsupported_vae_is_refused():
    vae = tiny_vae(True)
    vae.decoder.up_blocks[0].resnets[0].norm1 = torch.nn.BatchNorm2d(16)
    with pytest.raises(SdenhanceError, match="does not support"):
        vae_decode(vae, torch.zeros(1, 4, 8, 8), tile=64)


def test_maps_wait_in_a_temporary_file_when_memory_is_short(photo, monkeypatch):
    import psutil

    class Short:
        available = 1 << 10

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Short())
    stores = []
    real = tiled_vae.choose_store
    monkeypatch.setattr(tiled_vae, "choose_store", lambda *a: stores.append(real(*a)) or stores[-1])
    vae = tiny_vae(True)
    ref_latents, ref_image = untiled(vae, photo)
    image = vae_decode(vae, ref_latents, tile=64)
    assert stores and all(s.where == "disk" for s in stores)
    assert np.abs(image - ref_image).max() < TIGHT


def test_no_room_anywhere_is_one_clear_error(monkeypatch):
    import shutil
    from collections import namedtuple

    import psutil

    class Short:
        available = 1 << 10

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Short())
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(1 << 20, 1 << 20, 1 << 10))
    with pytest.raises(SdenhanceError, match="GiB for this image"):
        vae_decode(tiny_vae(False), torch.zeros(1, 4, 8, 8), tile=64)
