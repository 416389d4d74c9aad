"""Tiny random-weight Stable Diffusion models, built locally, saved in every layout we load.

Tests, benchmarks and smoke runs use these instead of downloads: the architectures are the real
ones (UNet2DCondition, AutoencoderKL with the ×8 latent factor, CLIP text encoders, ControlNet,
9-channel inpainting UNet), only narrow. Layouts: a diffusers folder, a Hugging Face cache tree
(so hub-id resolution runs offline), and single-file `.safetensors` in the A1111/Civitai layout.

    python -m sdenhance.testing tiny-model DIR [--family sd15|sdxl]
        [--layout folder|hub|single-file]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

# A byte-level BPE vocabulary for CLIPTokenizer, written locally: the 256 byte symbols, their
# end-of-word forms, a few merges and the two special tokens. Enough to tokenise any prompt.
_MERGES = [
    "t h",
    "th e</w>",
    "a n",
    "an d</w>",
    "i n",
    "o n",
    "e r",
    "a r",
    "o r",
    "e n",
    "p h",
    "ph o",
    "pho t",
    "phot o</w>",
    "s h",
    "d e",
    "t a",
    "ta i",
    "tai l</w>",
    "c a",
    "ca t</w>",
    "f a",
    "fa c",
    "fac e</w>",
]


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_tokenizer(folder: Path) -> None:
    """Write vocab.json/merges.txt/configs of a tiny CLIP tokenizer (vocab < 1000)."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(s, len(vocab))
    merges = list(dict.fromkeys(_MERGES))
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
            }
        )
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "do_lower_case": True,
            }
        )
    )


def _text_config(layers: int = 2, hidden: int = 32, projection: int | None = None):
    from transformers import CLIPTextConfig

    kwargs: dict[str, Any] = {}
    if projection is not None:
        kwargs["projection_dim"] = projection
    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        hidden_size=hidden,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=layers,
        pad_token_id=1,
        vocab_size=1000,
        max_position_embeddings=77,
        hidden_act="gelu",
        **kwargs,
    )


def _vae():
    from diffusers import AutoencoderKL

    # four blocks: the real ×8 latent factor, so tiling maths match real models
    return AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )


def _unet_kwargs(family: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "norm_num_groups": 16,
    }
    if family == "sdxl":
        common.update(
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=80,  # 6 time ids × 8 + pooled 32
            cross_attention_dim=96,  # 32 (CLIP-L) + 64 (bigG stand-in)
        )
    else:
        common.update(attention_head_dim=(2, 4), cross_attention_dim=32)
    return common


def build_components(
    family: str = "sd15", *, inpaint: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Random-weight pipeline components (seeded, so builds are reproducible)."""
    import tempfile

    import torch
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if family not in ("sd15", "sdxl"):
        raise ValueError(f"family must be sd15 or sdxl, got {family!r}")
    torch.manual_seed(seed)
    kwargs = _unet_kwargs(family)
    if inpaint:
        kwargs["in_channels"] = 9
    unet = UNet2DConditionModel(**kwargs)
    torch.manual_seed(seed + 1)
    vae = _vae()
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
        steps_offset=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
        tokenizer_2 = CLIPTokenizer.from_pretrained(tmp) if family == "sdxl" else None
    torch.manual_seed(seed + 2)
    components: dict[str, Any] = {
        "unet": unet,
        "vae": vae,
        "scheduler": scheduler,
        "tokenizer": tokenizer,
    }
    if family == "sdxl":
        components["text_encoder"] = CLIPTextModel(_text_config())
        torch.manual_seed(seed + 3)
        # ten layers: single-file checkpoints are recognised as SDXL by block 9 of this encoder;
        # wider than text_encoder, as in the real model, since diffusers tells them apart by width
        components["text_encoder_2"] = CLIPTextModelWithProjection(
            _text_config(layers=10, hidden=64, projection=32)
        )
        components["tokenizer_2"] = tokenizer_2
        components["image_encoder"] = None
        components["feature_extractor"] = None
    else:
        components["text_encoder"] = CLIPTextModel(_text_config())
        components["safety_checker"] = None
        components["feature_extractor"] = None
        components["image_encoder"] = None
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            module.eval()  # as from_pretrained leaves them
    return components


def build_controlnet(family: str = "sd15", *, seed: int = 0):
    """A random tile ControlNet matching `build_components(family)`'s UNet."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed + 10)
    kwargs = _unet_kwargs(family)
    for key in ("up_block_types", "out_channels", "sample_size"):
        kwargs.pop(key)
    # three stride-2 convolutions: conditioning image -> latent size (×8), as in the real models
    net = ControlNetModel(conditioning_embedding_out_channels=(8, 8, 8, 16), **kwargs)
    # diffusers starts the output convolutions at zero (training's starting point), which would
    # make an untrained net a no-op; a trained one's are not zero, so neither are these
    zero_convs = [net.controlnet_cond_embedding.conv_out, net.controlnet_mid_block]
    for conv in [*zero_convs, *net.controlnet_down_blocks]:
        conv.reset_parameters()
    return net


def build_pipeline(family: str = "sd15", *, inpaint: bool = False, seed: int = 0):
    """The img2img (or inpainting) pipeline of the tiny model."""
    from diffusers import (
        StableDiffusionImg2ImgPipeline,
        StableDiffusionInpaintPipeline,
        StableDiffusionXLImg2ImgPipeline,
        StableDiffusionXLInpaintPipeline,
    )

    components = build_components(family, inpaint=inpaint, seed=seed)
    if family == "sdxl":
        cls = StableDiffusionXLInpaintPipeline if inpaint else StableDiffusionXLImg2ImgPipeline
        return cls(**components, requires_aesthetics_score=False, force_zeros_for_empty_prompt=True)
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionImg2ImgPipeline
    return cls(**components, requires_safety_checker=False)


def save_folder(
    folder: str | Path, family: str = "sd15", *, inpaint: bool = False, seed: int = 0
) -> Path:
    """A diffusers folder (model_index.json + component subfolders, safetensors weights)."""
    folder = Path(folder)
    pipe = build_pipeline(family, inpaint=inpaint, seed=seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def save_controlnet(folder: str | Path, family: str = "sd15", *, seed: int = 0) -> Path:
    folder = Path(folder)
    build_controlnet(family, seed=seed).save_pretrained(folder, safe_serialization=True)
    return folder


def save_hub_cache(
    cache_dir: str | Path, repo_id: str, source: str | Path, *, revision: str = "0" * 40
) -> Path:
    """Lay out the folder `source` as repo `repo_id` in a Hugging Face hub cache at `cache_dir`.

    Same tree the hub client writes (blobs are plain copies, not symlinks): models--org--name
    with refs/main naming a snapshot. Point HF_HUB_CACHE (or HF_HOME/hub) at `cache_dir`.
    """
    root = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = root / "snapshots" / revision
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(source, snapshot)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    (root / "blobs").mkdir(exist_ok=True)
    return snapshot


def save_single_file(
    path: str | Path, family: str = "sd15", *, inpaint: bool = False, seed: int = 0
) -> Path:
    """One `.safetensors` in the original (A1111/Civitai) key layout."""
    from sdenhance.testing.ldm_layout import save_original_checkpoint

    pipe = build_pipeline(family, inpaint=inpaint, seed=seed)
    return save_original_checkpoint(pipe, Path(path))


def tiny_model(
    folder: str | Path, family: str = "sd15", layout: str = "folder", *, inpaint: bool = False
) -> Path:
    """Write a tiny model in `layout` (folder | hub | single-file); returns what `--model` takes."""
    folder = Path(folder)
    if layout == "folder":
        return save_folder(folder, family, inpaint=inpaint)
    if layout == "single-file":
        folder.mkdir(parents=True, exist_ok=True)
        return save_single_file(folder / f"tiny-{family}.safetensors", family, inpaint=inpaint)
    if layout == "hub":
        src = save_folder(folder / "src", family, inpaint=inpaint)
        repo = f"sdenhance-tiny/{family}"
        save_hub_cache(folder / "hub", repo, src)
        return folder / "hub"
    raise ValueError(f"layout must be folder, hub or single-file, got {layout!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sdenhance.testing")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tiny-model", help="write a tiny random-weight model")
    p.add_argument("dir")
    p.add_argument("--family", choices=["sd15", "sdxl"], default="sd15")
    p.add_argument("--layout", choices=["folder", "hub", "single-file"], default="folder")
    p.add_argument("--inpaint", action="store_true")
    p.add_argument(
        "--controlnet", action="store_true", help="also write a tile ControlNet in DIR/controlnet"
    )
    args = parser.parse_args(argv)
    out = tiny_model(args.dir, args.family, args.layout, inpaint=args.inpaint)
    if args.controlnet:
        save_controlnet(Path(args.dir) / "controlnet", args.family)
    import sys

    sys.stdout.write(f"{out}\n")
