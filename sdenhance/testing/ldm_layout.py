"""Writers of the original (A1111/LDM) single-file layout: tiny test models as real single files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdenhance.errors import SdenhanceError
from sdenhance.models.checkpoint import (
    CLIP_PREFIX,
    CONTROLNET_PREFIX,
    SDXL_CLIP_G_PREFIX,
    SDXL_CLIP_L_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
)
from sdenhance.models.pickles import write_safetensors

if TYPE_CHECKING:
    import torch


_RESNET_TO_LDM = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


_UNET_TOP_LEVEL = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
}


_VAE_ATTENTION_TO_LDM = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


_CLIP_G_LAYER_TO_LDM = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def _unet_key_to_ldm(key: str, config: Any) -> str:
    """One diffusers UNet/ControlNet key -> its original `input_blocks/middle_block/output_blocks`
    key.

    Block indices follow the original numbering: input block 0 is `conv_in`, then each down block
    takes `layers_per_block` resnet(+attention) slots plus one slot for its downsampler; each up
    block takes `layers_per_block + 1` slots, its upsampler riding in the last one (at `.1` when
    the block has no attention, `.2` when it has).
    """
    per_block = config.layers_per_block
    module, param = key.rsplit(".", 1)
    if module in _UNET_TOP_LEVEL:
        return f"{_UNET_TOP_LEVEL[module]}.{param}"
    parts = module.split(".")
    head = parts[0]
    if head == "down_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        slot = 1 + block * (per_block + 1)
        if kind == "resnets":
            return f"input_blocks.{slot + index}.0.{_resnet_suffix(rest, key)}.{param}"
        if kind == "attentions":
            return ".".join(["input_blocks", str(slot + index), "1", *rest, param])
        if kind == "downsamplers" and rest == ["conv"]:
            return f"input_blocks.{slot + per_block}.0.op.{param}"
    elif head == "mid_block":
        kind, index, rest = parts[1], int(parts[2]), parts[3:]
        if kind == "resnets":
            return f"middle_block.{2 * index}.{_resnet_suffix(rest, key)}.{param}"
        if kind == "attentions" and index == 0:
            return ".".join(["middle_block", "1", *rest, param])
    elif head == "up_blocks":
        block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
        slot = block * (per_block + 1)
        if kind == "resnets":
            return f"output_blocks.{slot + index}.0.{_resnet_suffix(rest, key)}.{param}"
        if kind == "attentions":
            return ".".join(["output_blocks", str(slot + index), "1", *rest, param])
        if kind == "upsamplers" and rest == ["conv"]:
            has_attention = "CrossAttn" in config.up_block_types[block]
            return f"output_blocks.{slot + per_block}.{2 if has_attention else 1}.conv.{param}"
    raise ValueError(f"no original-layout name for UNet weight {key!r}")


def _resnet_suffix(rest: list[str], key: str) -> str:
    name = ".".join(rest)
    if name not in _RESNET_TO_LDM:
        raise ValueError(f"no original-layout name for resnet weight {key!r}")
    return _RESNET_TO_LDM[name]


def _check_unet_config(config: Any, what: str) -> None:
    """The original layout (and diffusers' converter) assume one int `layers_per_block`."""
    if not isinstance(config.layers_per_block, int):
        raise SdenhanceError(
            f"cannot write this {what} in the original layout: layers_per_block="
            f"{config.layers_per_block!r} varies per block, the original layout needs one number"
        )
    if getattr(config, "mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
        raise SdenhanceError(
            f"cannot write this {what} in the original layout: mid_block_type="
            f"{config.mid_block_type!r}, the original layout has a cross-attention middle block"
        )


def unet_to_original(unet: Any) -> dict[str, torch.Tensor]:
    """A diffusers `UNet2DConditionModel`'s weights under original key names (no prefix)."""
    _check_unet_config(unet.config, "UNet")
    return {_unet_key_to_ldm(k, unet.config): v for k, v in unet.state_dict().items()}


def _vae_key_to_ldm(key: str, n_blocks: int) -> str:
    module, param = key.rsplit(".", 1)
    parts = module.split(".")
    side, head = parts[0], parts[1] if len(parts) > 1 else ""
    if module in ("quant_conv", "post_quant_conv"):
        return key
    if side in ("encoder", "decoder"):
        if len(parts) == 2 and head in ("conv_in", "conv_out"):
            return key
        if len(parts) == 2 and head == "conv_norm_out":
            return f"{side}.norm_out.{param}"
        if head == "mid_block" and parts[2] == "resnets":
            rest = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            return f"{side}.mid.block_{int(parts[3]) + 1}.{rest}.{param}"
        if head == "mid_block" and parts[2] == "attentions" and parts[3] == "0":
            name = _VAE_ATTENTION_TO_LDM[".".join(parts[4:])]
            return f"{side}.mid.attn_1.{name}.{param}"
        if head in ("down_blocks", "up_blocks"):
            block = int(parts[2])
            ldm_side, ldm_block = (
                ("down", block) if head == "down_blocks" else ("up", n_blocks - 1 - block)
            )
            if parts[3] == "resnets":
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                return f"{side}.{ldm_side}.{ldm_block}.block.{parts[4]}.{rest}.{param}"
            if parts[3] in ("downsamplers", "upsamplers") and parts[5:] == ["conv"]:
                sampler = "downsample" if head == "down_blocks" else "upsample"
                return f"{side}.{ldm_side}.{ldm_block}.{sampler}.conv.{param}"
    raise ValueError(f"no original-layout name for VAE weight {key!r}")


def vae_to_original(vae: Any) -> dict[str, torch.Tensor]:
    """A diffusers `AutoencoderKL`'s weights under original key names (no prefix).

    The original mid-block attention uses 1×1 convolutions, so its q/k/v/proj_out weights are
    stored 4-D; diffusers' converter squeezes them back to linear.
    """
    n_blocks = len(vae.config.block_out_channels)
    out: dict[str, torch.Tensor] = {}
    for key, value in vae.state_dict().items():
        new = _vae_key_to_ldm(key, n_blocks)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[new] = value
    return out


def _text_model_state(model: Any) -> dict[str, torch.Tensor]:
    """State dict with the `text_model.` prefix, which transformers >= 5.6 drops for
    CLIPTextModel."""
    return {
        (k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}"): v
        for k, v in model.state_dict().items()
    }


def clip_to_original(text_encoder: Any) -> dict[str, torch.Tensor]:
    """CLIP-L (HF transformers layout, which the original checkpoints keep) under `text_model.*`."""
    state = _text_model_state(text_encoder)
    extra = [k for k in state if not k.startswith("text_model.")]
    if extra:
        raise ValueError(f"CLIP-L has no original-layout name for {extra[0]!r}")
    return state


def open_clip_to_original(text_encoder: Any) -> dict[str, torch.Tensor]:
    """SDXL's second encoder (HF `CLIPTextModelWithProjection`) in the OpenCLIP layout.

    OpenCLIP keeps q, k and v in one `in_proj` tensor and stores the projection as `x @ P`, so
    `text_projection` is the transpose of the HF linear weight.
    """
    import torch

    state = _text_model_state(text_encoder)
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "text_projection.weight":
            out["text_projection"] = value.t().contiguous()
        elif key == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif key == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif key.startswith("text_model.final_layer_norm."):
            out["ln_final." + key.rsplit(".", 1)[1]] = value
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key):
            layer, module, param = m.groups()
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                qkv.setdefault(f"{layer}.{param}", {})[module[10]] = value
            elif module in _CLIP_G_LAYER_TO_LDM:
                out[f"transformer.resblocks.{layer}.{_CLIP_G_LAYER_TO_LDM[module]}.{param}"] = value
            else:
                raise ValueError(f"no OpenCLIP name for text encoder weight {key!r}")
        else:
            raise ValueError(f"no OpenCLIP name for text encoder weight {key!r}")
    for name, parts in qkv.items():
        layer, param = name.split(".")
        out[f"transformer.resblocks.{layer}.attn.in_proj_{param}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0
        )
    return out


def original_state_dict(pipe: Any) -> dict[str, torch.Tensor]:
    """Every weight of an SD1.5 or SDXL pipeline under its original single-file key."""
    family = "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd15"
    parts: list[tuple[str, dict[str, torch.Tensor]]] = [
        (UNET_PREFIX, unet_to_original(pipe.unet)),
        (VAE_PREFIX, vae_to_original(pipe.vae)),
    ]
    if family == "sdxl":
        parts.append((SDXL_CLIP_L_PREFIX, clip_to_original(pipe.text_encoder)))
        parts.append((SDXL_CLIP_G_PREFIX, open_clip_to_original(pipe.text_encoder_2)))
    else:
        parts.append((CLIP_PREFIX, clip_to_original(pipe.text_encoder)))
    return {prefix + k: v for prefix, state in parts for k, v in state.items()}


def controlnet_to_original(controlnet: Any) -> dict[str, torch.Tensor]:
    """A diffusers `ControlNetModel`'s weights in the original `control_model.*` layout."""
    config = controlnet.config
    _check_unet_config(config, "ControlNet")
    n_hint = 2 * (len(config.conditioning_embedding_out_channels) - 1)
    if n_hint != 6:
        # diffusers' converter reads the hint block's output conv at the fixed index 14
        raise SdenhanceError(
            "cannot write this ControlNet in the original layout: its conditioning embedding has "
            f"{n_hint} blocks, the original layout (and diffusers' loader) expects 6"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in controlnet.state_dict().items():
        module, param = key.rsplit(".", 1)
        if module == "controlnet_cond_embedding.conv_in":
            new = f"input_hint_block.0.{param}"
        elif module == "controlnet_cond_embedding.conv_out":
            new = f"input_hint_block.{2 * (n_hint + 1)}.{param}"
        elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)", module):
            new = f"input_hint_block.{2 * (int(m.group(1)) + 1)}.{param}"
        elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
            new = f"zero_convs.{m.group(1)}.0.{param}"
        elif module == "controlnet_mid_block":
            new = f"middle_block_out.0.{param}"
        else:
            new = _unet_key_to_ldm(key, config)
        out[CONTROLNET_PREFIX + new] = value
    return out


def save_original_checkpoint(pipe: Any, path: Path) -> Path:
    """Write an SD1.5 or SDXL pipeline (img2img or inpainting) as one original-layout
    `.safetensors`.

    The file loads with diffusers' `from_single_file` exactly as an A1111/Civitai checkpoint
    does: `model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`
    (SD1.5) or `conditioner.embedders.{0,1}.*` (SDXL).
    """
    return write_safetensors(original_state_dict(pipe), Path(path))


def save_original_controlnet(controlnet: Any, path: Path) -> Path:
    """Write an SD1.5 ControlNet in the original `control_model.*` layout (as lllyasviel's files).

    SDXL ControlNets are refused: diffusers' single-file converter drops the original `label_emb`
    (SDXL's added time/text embedding), so such a file could not be loaded back; SDXL ControlNets
    are published in the diffusers layout anyway.
    """
    if controlnet.config.addition_embed_type is not None or controlnet.config.class_embed_type:
        raise SdenhanceError(
            "cannot write an SDXL ControlNet in the original layout: diffusers cannot load it back "
            "(its converter ignores label_emb); save it with save_pretrained instead"
        )
    return write_safetensors(controlnet_to_original(controlnet), Path(path))
