"""Tiny LoRAs, textual-inversion embeddings and VAEs for the tiny models, in users' layouts.

LoRAs: random low-rank pairs for the attention projections of the tiny UNet and text
encoder(s), written in the Kohya/A1111 layout (`lora_unet_…`/`lora_te…`, `lora_down`/`lora_up`/
`alpha`; SDXL UNet names in the original SGM block form, from a table written out by hand for
the tiny UNet) or in the diffusers/PEFT layout (`unet.…`/`text_encoder….lora_A/lora_B`), from
the same tensors, so both layouts must give the same pixels. Embeddings: A1111 `.safetensors`
(`emb_params`, SDXL `clip_l`/`clip_g`), A1111 `.pt` pickles and diffusers `{token: vector}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
_TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")

# diffusers attention blocks of the tiny UNet -> original (SGM) names; layers_per_block=1 and
# blocks (CrossAttnDown, Down) / (Up, CrossAttnUp): input_blocks.1 is down 0's only layer,
# output_blocks 2-3 are up block 1's two layers, middle_block.1 the mid attention
TINY_SGM = {
    "down_blocks.0.attentions.0.": "input_blocks.1.1.",
    "mid_block.attentions.0.": "middle_block.1.",
    "up_blocks.1.attentions.0.": "output_blocks.2.1.",
    "up_blocks.1.attentions.1.": "output_blocks.3.1.",
}


def lora_layers(
    family: str = "sd15", *, rank: int = 4, seed: int = 0, std: float = 0.3
) -> dict[tuple[str, str], tuple[Any, Any]]:
    """{(component, layer name): (down, up)} for the tiny model of `family` (seeded)."""
    import torch

    from sdenhance.testing import build_components

    parts = build_components(family)
    modules = [("unet", parts["unet"], _UNET_TARGETS), ("te1", parts["text_encoder"], _TE_TARGETS)]
    if family == "sdxl":
        modules.append(("te2", parts["text_encoder_2"], _TE_TARGETS))
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for component, model, targets in modules:
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(targets):
                if component != "unet" and not name.startswith("text_model."):
                    name = f"text_model.{name}"
                down = torch.randn(rank, module.in_features, generator=gen) * std
                up = torch.randn(module.out_features, rank, generator=gen) * std
                out[(component, name)] = (down, up)
    return out


def save_lora(
    path: str | Path,
    family: str = "sd15",
    layout: str = "kohya",
    *,
    rank: int = 4,
    seed: int = 0,
    std: float = 0.3,
) -> Path:
    """Write a tiny LoRA (`layout` kohya | diffusers) as .safetensors; alpha = rank (scale 1)."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for (component, name), (down, up) in lora_layers(family, rank=rank, seed=seed, std=std).items():
        if layout == "kohya":
            if component == "unet" and family == "sdxl":
                for diffusers, sgm in TINY_SGM.items():
                    name = name.replace(diffusers, sgm)
            prefix = {"unet": "lora_unet", "te1": "lora_te1" if family == "sdxl" else "lora_te"}
            prefix["te2"] = "lora_te2"
            key = f"{prefix[component]}_{name.replace('.', '_')}"
            tensors[f"{key}.lora_down.weight"] = down.contiguous()
            tensors[f"{key}.lora_up.weight"] = up.contiguous()
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
        elif layout == "diffusers":
            prefix = {"unet": "unet", "te1": "text_encoder", "te2": "text_encoder_2"}[component]
            tensors[f"{prefix}.{name}.lora_A.weight"] = down.contiguous()
            tensors[f"{prefix}.{name}.lora_B.weight"] = up.contiguous()
        else:
            raise ValueError(f"layout must be kohya or diffusers, got {layout!r}")
    save_file(tensors, str(path))
    return path


def save_embedding(
    path: str | Path,
    family: str = "sd15",
    *,
    vectors: int = 2,
    seed: int = 0,
    layout: str = "a1111",
    std: float = 1.0,
) -> Path:
    """Write a tiny textual-inversion embedding; `layout` a1111 (.safetensors, or a pickle
    when `path` ends in .pt) | diffusers ({"<name>": vectors})."""
    import torch
    from safetensors.torch import save_file

    from sdenhance.testing import build_components

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = build_components(family)
    gen = torch.Generator().manual_seed(seed)

    def rows(encoder: Any) -> torch.Tensor:
        width = encoder.get_input_embeddings().weight.shape[1]
        return torch.randn(vectors, width, generator=gen) * std

    if family == "sdxl":
        data = {"clip_l": rows(parts["text_encoder"]), "clip_g": rows(parts["text_encoder_2"])}
    elif layout == "diffusers":
        data = {f"<{path.stem}>": rows(parts["text_encoder"])}
    else:
        data = {"emb_params": rows(parts["text_encoder"])}
    if path.suffix == ".pt":
        payload = {"string_to_param": {"*": data.get("emb_params")}, "name": path.stem, "step": 1}
        torch.save(payload, path)
    else:
        save_file(data, str(path))
    return path


def build_vae(family: str = "sd15", *, seed: int = 1, force_upcast: bool | None = None):
    """A tiny VAE of the tiny models' architecture with its family's real latent scale
    (0.18215 SD 1.5, 0.13025 SDXL) and other random weights than the model's own."""
    import torch
    from diffusers import AutoencoderKL

    from sdenhance.testing import _vae

    torch.manual_seed(seed)
    config = {k: v for k, v in _vae().config.items() if not k.startswith("_")}
    config["scaling_factor"] = 0.13025 if family == "sdxl" else 0.18215
    if force_upcast is not None:
        config["force_upcast"] = force_upcast
    torch.manual_seed(seed)
    return AutoencoderKL(**config).eval()


def save_vae(
    path: str | Path, family: str = "sd15", *, seed: int = 1, single_file: bool = False
) -> Path:
    """A diffusers VAE folder, or (`single_file`) one .safetensors in the original key layout."""
    from safetensors.torch import save_file

    from sdenhance.testing.ldm_layout import vae_to_original

    path = Path(path)
    vae = build_vae(family, seed=seed)
    if single_file:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.contiguous() for k, v in vae_to_original(vae).items()}
        save_file(tensors, str(path))
    else:
        vae.save_pretrained(path, safe_serialization=True)
    return path
