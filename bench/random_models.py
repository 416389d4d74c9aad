"""Random-weight models of the real SD 1.5 architectures, saved once as diffusers folders.

The benchmarks load them through the real code path (`Enhancer(model=folder, controlnet=folder)`),
so loading, sharing and every forward pass cost what they cost with downloaded weights; only the
numbers in the weights are random. Nothing is downloaded. `tiny` builds the test-size models of
`sdenhance.testing` instead (for `--quick`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

STAMP = ".complete"
VERSION = "sd15-random-v1"  # bump when the build changes, so stale caches are rebuilt


def cache_root(given: str | None = None) -> Path:
    """Where built models live: `--cache`, else $SDENHANCE_BENCH_CACHE, else /tmp/sdenhance-bench."""
    return Path(given or os.environ.get("SDENHANCE_BENCH_CACHE") or "/tmp/sdenhance-bench")


def real_unet():
    """SD 1.5's UNet2DConditionModel (860M parameters) with random weights."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def real_vae():
    """SD's AutoencoderKL (84M parameters): ×8 latent factor, 4 latent channels, 0.18215 scaling."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
        scaling_factor=0.18215,
    )


def real_text_encoder():
    """CLIP ViT-L/14's text tower (123M parameters) as SD 1.5 uses it."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        projection_dim=768,
        # the tiny local tokenizer's ids are < 1000; eos 2 selects the argmax pooling
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    return CLIPTextModel(config)


def real_scheduler():
    """SD 1.5's scheduler config (PNDM); stages build their own sampler from it."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_real(root: Path, device: str = "cpu", dtype: Any = None) -> tuple[Path, Path]:
    """Build and save the real-size pipeline and ControlNet (atomically); returns their folders.

    `device` is where the random weights are drawn (a GPU draws 1.2 B of them in a second, a
    CPU takes a minute); `dtype` is what is saved (fp16 halves the files and the loading).
    """
    import torch
    from diffusers import ControlNetModel, StableDiffusionImg2ImgPipeline
    from transformers import CLIPTokenizer

    from sdenhance.testing import write_tokenizer

    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    with torch.device(device):
        torch.manual_seed(0)
        unet = real_unet()
        torch.manual_seed(1)
        vae = real_vae()
        torch.manual_seed(2)
        text_encoder = real_text_encoder()
        controlnet = ControlNetModel.from_unet(unet)  # the tile ControlNet's architecture
    for module in (unet, vae, text_encoder, controlnet):
        module.to("cpu", dtype)
    write_tokenizer(tmp / "tok")
    tokenizer = CLIPTokenizer.from_pretrained(tmp / "tok")
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=real_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(tmp / "sd15", safe_serialization=True)
    controlnet.save_pretrained(tmp / "sd15-controlnet", safe_serialization=True)
    del pipe, controlnet, unet, vae, text_encoder
    for name in ("sd15", "sd15-controlnet"):
        dst = root / name
        if dst.exists():
            shutil.rmtree(dst)
        (tmp / name).rename(dst)
    shutil.rmtree(tmp)
    return root / "sd15", root / "sd15-controlnet"


def build_tiny(root: Path) -> tuple[Path, Path]:
    from sdenhance import testing

    model = testing.save_folder(root / "tiny-sd15", "sd15")
    controlnet = testing.save_controlnet(root / "tiny-sd15-controlnet", "sd15")
    return model, controlnet


def ensure(
    kind: str, cache: Path, *, device: str = "cpu", dtype: str | None = None
) -> tuple[Path, Path, float | None]:
    """The (model, controlnet) folders of `kind` ("real" or "tiny"), built on first use.

    Real-size models saved in another dtype ("fp16", "bf16") live in their own folder
    (`real-fp16`...); `device` only says where a build draws its weights. Returns the build
    seconds too (None when the cache already had them).
    """
    root = cache / (f"{kind}-{dtype}" if kind == "real" and dtype else kind)
    stamp = root / STAMP
    names = ("sd15", "sd15-controlnet") if kind == "real" else ("tiny-sd15", "tiny-sd15-controlnet")
    if (
        stamp.is_file()
        and stamp.read_text().strip() == VERSION
        and all((root / n).is_dir() for n in names)
    ):
        return root / names[0], root / names[1], None
    root.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    t0 = time.perf_counter()
    if kind == "real":
        import torch

        saved = {None: None, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        model, controlnet = build_real(root, device, saved)
    else:
        model, controlnet = build_tiny(root)
    stamp.write_text(VERSION + "\n")
    return model, controlnet, time.perf_counter() - t0
