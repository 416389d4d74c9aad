"""`--vae`: another VAE for a model (e.g. `madebyollin/sdxl-vae-fp16-fix`,
`stabilityai/sd-vae-ft-mse`).

A spec is a diffusers VAE folder (its `config.json`), a pipeline folder (its `vae/`), a hub id
resolved through the cache, or a single `.safetensors` in the original or diffusers key layout
(pickles only with --allow-pickle). A single file has no config: it takes the model's own VAE
config, and must then load strictly into it. Family: a VAE's latent scaling factor and channels
must match the model's VAE (SD 1.5 0.18215, SDXL 0.13025); a single file cannot say which family
it was trained for (both share one architecture), so only its shapes are checked.

On fp16, diffusers' SDXL pipelines run a VAE whose config says `force_upcast` in fp32 (the
original SDXL VAE overflows in fp16); the tiled VAE of the upscale stage does the same through
`sdenhance.diffusion.tiled_vae`. A single file keeps the model's `force_upcast`, the safe choice.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.models.resolve import hub_cache_dir, hub_offline

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _vae_folder(folder: Path) -> Path | None:
    for candidate in (folder, folder / "vae"):
        config = candidate / "config.json"
        if config.is_file():
            try:
                data = json.loads(config.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("_class_name") == "AutoencoderKL":
                return candidate
    return None


def locate(spec: str) -> tuple[str, Path]:
    """("file" | "folder", path) of a VAE spec; nothing found is a user error."""
    path = Path(os.path.expanduser(spec))
    if path.is_file():
        return "file", path
    if path.is_dir():
        folder = _vae_folder(path)
        if folder is None:
            raise SdenhanceError(
                f"`--vae {spec}`: no AutoencoderKL config.json in the folder or its vae/"
            )
        return "folder", folder
    if not _HUB_ID.match(spec):
        raise SdenhanceError(f"`--vae {spec}`: no such file or folder, and not a hub id (org/name)")
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir()
    try:
        root = Path(snapshot_download(spec, local_files_only=True, cache_dir=cache))
    except (OSError, ValueError):
        if hub_offline():
            raise SdenhanceError(
                f"`--vae {spec}` is not in the Hugging Face cache {cache} and HF_HUB_OFFLINE is "
                "set",
                hint="go online once, or pass a local folder or .safetensors file",
            ) from None
        try:
            root = Path(
                snapshot_download(spec, cache_dir=cache, allow_patterns=["*.json", "*.safetensors"])
            )
        except Exception as exc:  # the hub client raises many kinds
            raise SdenhanceError(
                f"`--vae {spec}`: download failed ({type(exc).__name__})"
            ) from None
    folder = _vae_folder(root)
    if folder is None:
        raise SdenhanceError(f"`--vae {spec}`: the hub repo holds no AutoencoderKL")
    return "folder", folder


def load_vae(spec: str, reference: Any, *, dtype: Any, allow_pickle: bool) -> tuple[Any, Path]:
    """The VAE of `spec`, checked against the model's VAE `reference`; (vae, where it is)."""
    import diffusers

    kind, path = locate(spec)
    if kind == "folder":
        try:
            vae = diffusers.AutoencoderKL.from_pretrained(
                str(path), torch_dtype=dtype, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SdenhanceError(f"could not load the VAE {spec}: {first}") from None
    else:
        vae = _from_file(path, reference, dtype=dtype, allow_pickle=allow_pickle)
    check_family(spec, vae, reference)
    vae.eval()
    return vae, path


def _from_file(path: Path, reference: Any, *, dtype: Any, allow_pickle: bool) -> Any:
    import diffusers
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from sdenhance.models.library import read_tensors

    tensors = read_tensors(path, allow_pickle=allow_pickle, what="VAE")
    config = {k: v for k, v in reference.config.items() if k != "_use_default_values"}
    if not any(k.endswith("down_blocks.0.resnets.0.conv1.weight") for k in tensors):
        tensors = convert_ldm_vae_checkpoint(tensors, config)
    vae = diffusers.AutoencoderKL.from_config(config)
    try:
        vae.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise SdenhanceError(
            f"{path} does not fit this model's VAE ({str(exc).splitlines()[0][:120]})",
            hint="use a VAE made for the model's family (SD 1.5 or SDXL)",
        ) from None
    return vae.to(dtype)


def check_family(spec: str, vae: Any, reference: Any) -> None:
    """Refuse a VAE whose latent space is not the model's (scaling factor, channels)."""
    names = {0.18215: "SD 1.5", 0.13025: "SDXL"}
    mine, theirs = vae.config, reference.config
    if (
        abs(float(mine.scaling_factor) - float(theirs.scaling_factor)) > 1e-6
        or mine.latent_channels != theirs.latent_channels
    ):
        family = names.get(round(float(mine.scaling_factor), 5), "another model family")
        model = names.get(round(float(theirs.scaling_factor), 5), "this model")
        raise SdenhanceError(
            f"VAE {spec} is for {family} (latent scale {mine.scaling_factor}, "
            f"{mine.latent_channels} channels) but the model is {model} "
            f"(scale {theirs.scaling_factor}, {theirs.latent_channels} channels)",
            hint="pass a --vae of the model's family",
        )
