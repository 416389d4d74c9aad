"""`--vae` on the tiny models: folder, single file, hub id, family check, fp16 upcast, records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdenhance import Enhancer, SdenhanceError
from sdenhance.testing.networks import build_vae, save_vae

FAST = {"strength": 0.6, "steps": 3, "seed": 3, "prompt": "a cat"}


def arr(img):
    return np.asarray(img, dtype=np.int16)


def test_a_vae_folder_or_file_replaces_the_models_and_is_recorded(models, photo, tmp_path):
    from sdenhance.io.infotext import format_infotext

    folder = save_vae(tmp_path / "my-vae", "sd15", seed=7)
    single = save_vae(tmp_path / "my-vae.safetensors", "sd15", seed=7, single_file=True)
    base = arr(Enhancer(models["sd15"]).img2img(photo, **FAST))
    enh = Enhancer(models["sd15"], vae=str(folder))
    swapped = arr(enh.img2img(photo, **FAST))
    assert np.abs(swapped - base).mean() > 1.0
    assert enh.last_record["models"]["vae"] == str(folder)
    assert enh.engine.img2img().vae is enh.engine.base.vae  # one VAE, shared
    by_file = Enhancer(models["sd15"], vae=str(single))
    assert np.array_equal(arr(by_file.img2img(photo, **FAST)), swapped)  # same weights
    described = by_file.last_record["models"]
    assert len(described["vae_hash"]) == 10
    text = format_infotext(by_file.last_record)
    assert f"VAE hash: {described['vae_hash']}" in text and "VAE: my-vae" in text


def test_a_hub_id_resolves_through_the_cache(models, photo, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from sdenhance.testing import save_hub_cache

    cache = tmp_path / "hub"
    save_hub_cache(cache, "someone/tiny-vae", save_vae(tmp_path / "src", "sd15", seed=7))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    folder = save_vae(tmp_path / "same", "sd15", seed=7)
    hub = arr(Enhancer(models["sd15"], vae="someone/tiny-vae").img2img(photo, **FAST))
    assert np.array_equal(
        hub, arr(Enhancer(models["sd15"], vae=str(folder)).img2img(photo, **FAST))
    )
    with pytest.raises(SdenhanceError, match="not in the Hugging Face cache"):
        Enhancer(models["sd15"], vae="someone/absent").img2img(photo, **FAST)


def test_a_vae_of_the_other_family_is_refused(models, photo, tmp_path):
    xl = save_vae(tmp_path / "xl-vae", "sdxl")
    with pytest.raises(SdenhanceError, match="VAE .* is for SDXL .* but the model is SD 1.5"):
        Enhancer(models["sd15"], vae=str(xl)).img2img(photo, **FAST)
    junk = tmp_path / "junk.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.conv_in.weight": torch.zeros(3, 3)}, str(junk))
    with pytest.raises(SdenhanceError, match="does not fit this model's VAE"):
        Enhancer(models["sd15"], vae=str(junk)).img2img(photo, **FAST)
    with pytest.raises(SdenhanceError, match="no AutoencoderKL config.json"):
        Enhancer(models["sd15"], vae=str(tmp_path)).img2img(photo, **FAST)


@pytest.mark.parametrize("upcast", [True, False])
def test_fp16_vaes_that_ask_for_it_run_in_fp32(upcast):
    from sdenhance.diffusion.tiled_vae import vae_decode, vae_precision

    vae = build_vae("sdxl", force_upcast=upcast)
    with torch.no_grad():  # activations past fp16's range, as the original SDXL VAE has
        vae.decoder.mid_block.resnets[0].conv2.weight.mul_(200_000)
    vae.to(torch.float16)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def decode():
        with vae_precision(vae, torch.float16) as dtype:
            return vae_decode(vae, latents, tile=64, device="cpu", dtype=dtype)

    if upcast:
        assert np.isfinite(decode()).all()
    else:
        with pytest.raises(SdenhanceError, match="NaNs"):
            decode()
    after = vae.state_dict()
    assert all(v.dtype == torch.float16 and torch.equal(before[k], v) for k, v in after.items())
