"""The tiled VAE against diffusers' untiled and tiled (`enable_tiling`) VAE, on SD's real VAE
architecture with random weights and a real photo: time, and the difference from untiled.

    python bench/vae.py                         # 256 px photo, 128 px tiles (about a minute on 2 cores)
    python bench/vae.py --size 1024 --tile 512 --device cuda --dtype fp16

Prints a markdown table. Difference: max and mean |tiled - untiled| of the decoded image in
[0, 1] (decode of the untiled latents), and of the scaled latents (encode).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def photo(size: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    image = Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, np.float32) / 255.0


def timed(fn):
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    import torch
    from random_models import real_vae

    from sdenhance.diffusion.tiled_vae import vae_decode, vae_encode

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="photo side in px (multiple of 8)")
    parser.add_argument("--tile", type=int, default=128, help="tile side in px (multiple of 8)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    args = parser.parse_args(argv)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    device = torch.device(args.device)

    torch.manual_seed(0)
    vae = real_vae().eval().to(device, dtype)
    image = photo(args.size)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].to(device, dtype) * 2 - 1
    scale = vae.config.scaling_factor

    def diffusers_pass(model):
        with torch.no_grad():
            lat = model.encode(x).latent_dist.mode() * scale
            out = model.decode(ref_latents.to(device, dtype) / scale).sample
        return lat.float().cpu(), ((out[0].float().cpu() + 1) / 2).clamp(0, 1).numpy()

    with torch.no_grad():
        ref_latents = (vae.encode(x).latent_dist.mode() * scale).float().cpu()
    (_, ref_image), untiled_s = timed(lambda: diffusers_pass(vae))
    ref_image = ref_image.transpose(1, 2, 0)

    tiled = copy.deepcopy(vae)
    tiled.enable_tiling()
    tiled.tile_sample_min_size = args.tile
    tiled.tile_latent_min_size = args.tile // 8
    (their_lat, their_img), their_s = timed(lambda: diffusers_pass(tiled))

    def ours():
        kw = dict(tile=args.tile, device=device, dtype=dtype)
        return vae_encode(vae, image, **kw), vae_decode(vae, ref_latents, **kw)

    (our_lat, our_img), our_s = timed(ours)

    def row(name, seconds, img, lat):
        if img is None:
            return f"| {name} | {seconds:.1f} | 0 | 0 | 0 | 0 |"
        di, dl = np.abs(img - ref_image), (lat - ref_latents).abs()
        return (
            f"| {name} | {seconds:.1f} | {di.max():.2g} | {di.mean():.2g} | "
            f"{dl.max().item():.2g} | {dl.mean().item():.2g} |"
        )

    print(
        f"VAE encode + decode of a {args.size}×{args.size} photo, SD's VAE (random weights), "
        f"{args.device} {args.dtype}, {args.tile} px tiles\n"
    )
    print("| VAE | seconds | image max | image mean | latent max | latent mean |")
    print("|---|---:|---:|---:|---:|---:|")
    print(row("diffusers, untiled", untiled_s, None, None))
    print(row("diffusers, enable_tiling", their_s, their_img.transpose(1, 2, 0), their_lat))
    print(row("sdenhance tiled", our_s, our_img, our_lat))


if __name__ == "__main__":
    main()
