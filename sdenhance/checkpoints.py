"""Single-file checkpoints in the original (A1111/Civitai/LDM) layout: write, check, inspect, hash.

Users bring `.safetensors` files from Civitai and A1111 model folders; diffusers loads them with
`from_single_file`, which converts the original key layout on the fly. This module is the other
half that the engine and the tests need:

- `save_original_checkpoint` / `save_original_controlnet` write diffusers models back in the
  original layout (the inverse of `diffusers.loaders.single_file_utils`), so the tiny test models
  exist as real single files.
- `check_safetensors` and `inspect_checkpoint` read only the header, so a truncated download, a
  LoRA or an SDXL file given where a ControlNet is expected fails in milliseconds with one clear
  line instead of a stack trace from deep inside a loader.
- `is_pickle`, `load_pickle_weights` and `convert_pickle_to_safetensors` let `--allow-pickle`
  load `.ckpt` files weights-only, through the same single-file path.
- `short_hash` is A1111's "Model hash" for the infotext.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import SdenhanceError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Family = Literal["sd15", "sdxl"]
Kind = Literal["pipeline", "controlnet", "unknown"]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
CONTROLNET_PREFIX = "control_model."

MAX_HEADER_BYTES = 100 * 1024 * 1024

# bits per element of every safetensors dtype (sub-byte float formats included)
# fmt: off
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
_TORCH_DTYPE_NAMES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}
# fmt: on


# --------------------------------------------------------------------------------------------
# Writing diffusers models in the original layout
# --------------------------------------------------------------------------------------------

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
    """One diffusers UNet/ControlNet key -> its original `input_blocks/middle_block/output_blocks` key.

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
    """State dict with the `text_model.` prefix, which transformers >= 5.6 drops for CLIPTextModel."""
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


def _write_safetensors(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a checkpoint."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_original_checkpoint(pipe: Any, path: Path) -> Path:
    """Write an SD1.5 or SDXL pipeline (img2img or inpainting) as one original-layout `.safetensors`.

    The file loads with diffusers' `from_single_file` exactly as an A1111/Civitai checkpoint
    does: `model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`
    (SD1.5) or `conditioner.embedders.{0,1}.*` (SDXL).
    """
    return _write_safetensors(original_state_dict(pipe), Path(path))


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
    return _write_safetensors(controlnet_to_original(controlnet), Path(path))


# --------------------------------------------------------------------------------------------
# Header checks and inspection
# --------------------------------------------------------------------------------------------


def _corrupt(path: Path, reason: str) -> SdenhanceError:
    return SdenhanceError(
        f"checkpoint {path} is corrupt or truncated: {reason}",
        hint="download it again",
    )


def check_safetensors(path: Path) -> dict[str, Any]:
    """Validate a `.safetensors` header against the file before anything loads it; return the header.

    Checks what safetensors itself would reject, but with one readable line: the length prefix,
    the JSON, every tensor's dtype × shape against its byte range, ranges inside the file and
    tiling the data section without overlaps or gaps. Reads only the header.
    """
    path = Path(path)
    if not path.is_file():
        raise SdenhanceError(f"checkpoint {path} not found", hint="check the path")
    size = path.stat().st_size
    if size < 8:
        raise _corrupt(path, f"the file has {size} bytes, fewer than the 8-byte header length")
    with path.open("rb") as f:
        prefix = f.read(8)
        if _looks_like_pickle(prefix + f.read(1)):
            raise SdenhanceError(
                f"checkpoint {path} is a pickle (.ckpt/.pt), not safetensors",
                hint="use a .safetensors file, or pass --allow-pickle to load it weights-only",
            )
        (n,) = struct.unpack("<Q", prefix)
        if n > MAX_HEADER_BYTES:
            raise _corrupt(path, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
        if 8 + n > size:
            raise _corrupt(path, f"header length {n} points past the end of the {size}-byte file")
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    data_size = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if entry is not None and not isinstance(entry, dict):
                raise _corrupt(path, "__metadata__ is not a JSON object")
            continue
        spans.append(_check_entry(path, name, entry, data_size))
    spans.sort()
    end = 0
    previous = ""
    for begin, stop, name in spans:
        if begin < end:
            raise _corrupt(path, f"tensor {name!r} overlaps tensor {previous!r}")
        if begin > end:
            raise _corrupt(path, f"gap of {begin - end} bytes before tensor {name!r}")
        end, previous = stop, name
    if end != data_size:
        raise _corrupt(path, f"{data_size - end} bytes after the last tensor")
    return header


def _check_entry(path: Path, name: str, entry: Any, data_size: int) -> tuple[int, int, str]:
    if not isinstance(entry, dict):
        raise _corrupt(path, f"tensor {name!r} has no dtype/shape/data_offsets")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPE_BITS:
        raise _corrupt(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _corrupt(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise _corrupt(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, stop = offsets
    if stop > data_size:
        raise _corrupt(
            path, f"tensor {name!r} ends at byte {stop} of a {data_size}-byte data section"
        )
    numel = 1
    for d in shape:
        numel *= d
    expected = numel * _DTYPE_BITS[dtype] // 8
    if stop - begin != expected:
        raise _corrupt(
            path,
            f"tensor {name!r} ({dtype} {shape}) needs {expected} bytes but spans {stop - begin}",
        )
    return begin, stop, name


@dataclass(frozen=True)
class CheckpointInfo:
    """What a single-file checkpoint holds, read from its header alone.

    `family` is None when `kind` is "unknown"; `detail` says in words what was recognised (an
    SD 2.x model, a LoRA, ...) so errors can tell the user; `missing` names pipeline components
    whose weights are absent (diffusers cannot load such a file as a pipeline).
    """

    path: Path
    family: Family | None
    kind: Kind
    inpaint: bool
    dtype: str
    n_tensors: int
    size_bytes: int
    layout: Literal["original", "diffusers"] = "original"
    detail: str = ""
    missing: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


def inspect_checkpoint(path: Path) -> CheckpointInfo:
    """Family (SD1.5/SDXL), kind (pipeline/ControlNet) and inpainting of a `.safetensors` file.

    Validates the header first (`check_safetensors`); reads no tensor data. Our own key rules,
    not diffusers' single-key probes, so tiny and pruned files classify the same as full ones.
    """
    path = Path(path)
    header = check_safetensors(path)
    metadata = header.get("__metadata__") or {}
    shapes = {k: v["shape"] for k, v in header.items() if k != "__metadata__"}
    family, kind, layout, detail = _classify(shapes)
    missing: tuple[str, ...] = ()
    if kind == "pipeline":
        missing = _missing_components(shapes, family)
    in_conv = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight")
    inpaint = kind == "pipeline" and in_conv is not None and len(in_conv) == 4 and in_conv[1] == 9
    return CheckpointInfo(
        path=path,
        family=family,
        kind=kind,
        inpaint=inpaint,
        dtype=_dominant_dtype(header),
        n_tensors=len(shapes),
        size_bytes=path.stat().st_size,
        layout=layout,
        detail=detail,
        missing=missing,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


def _context_dim(shapes: dict[str, list[int]], prefix: str) -> int | None:
    """Cross-attention width (768 SD1.5, 1024 SD2, 2048 SDXL) from any attn2.to_k weight."""
    for key, shape in shapes.items():
        if key.startswith(prefix) and key.endswith("attn2.to_k.weight") and len(shape) == 2:
            return shape[1]
    return None


def _classify(
    shapes: dict[str, list[int]],
) -> tuple[Family | None, Kind, Literal["original", "diffusers"], str]:
    keys = shapes.keys()

    def any_prefix(*prefixes: str) -> bool:
        return any(k.startswith(prefixes) for k in keys)

    def any_part(*parts: str) -> bool:
        return any(p in k for k in keys for p in parts)

    sd2 = "an SD 2.x model (OpenCLIP-H text encoder), not SD 1.5 or SDXL"
    if any_prefix(CONTROLNET_PREFIX) or any_part("input_hint_block"):
        if _context_dim(shapes, "") == 1024:
            return None, "unknown", "original", "an SD 2.x ControlNet, not SD 1.5 or SDXL"
        family: Family = "sdxl" if any_part("label_emb.") else "sd15"
        return family, "controlnet", "original", f"an {_FAMILY_NAMES[family]} ControlNet"
    if any_prefix("controlnet_cond_embedding."):
        if _context_dim(shapes, "") == 1024:
            return None, "unknown", "diffusers", "an SD 2.x ControlNet, not SD 1.5 or SDXL"
        family = "sdxl" if any_prefix("add_embedding.") else "sd15"
        return family, "controlnet", "diffusers", f"an {_FAMILY_NAMES[family]} ControlNet"
    if any_prefix("conditioner.embedders.1."):
        return "sdxl", "pipeline", "original", "an SDXL checkpoint"
    if any_prefix("conditioner.embedders.0.model."):
        return (
            None,
            "unknown",
            "original",
            "an SDXL refiner, which has no SD 1.5/SDXL base pipeline",
        )
    if any_prefix("cond_stage_model.model."):
        return None, "unknown", "original", sd2
    if any_prefix(UNET_PREFIX, "cond_stage_model."):
        context = _context_dim(shapes, UNET_PREFIX)
        if context == 1024:
            return None, "unknown", "original", sd2
        if context == 2048:
            return "sdxl", "pipeline", "original", "an SDXL UNet without its text encoders"
        return "sd15", "pipeline", "original", "an SD 1.5 checkpoint"
    if any_part("lora_", ".lora.", "hada_", "lokr_"):
        return None, "unknown", "original", "a LoRA/LyCORIS adapter, not a whole model"
    if any_prefix("emb_params", "string_to_param", "clip_l", "clip_g"):
        return None, "unknown", "original", "a textual-inversion embedding, not a model"
    if any_prefix("down_blocks.", "time_embedding.", "conv_in."):
        return (
            None,
            "unknown",
            "diffusers",
            (
                "a bare diffusers UNet (one component, not a whole checkpoint); "
                "pass the diffusers folder it belongs to"
            ),
        )
    if any_prefix("encoder.", "decoder.", VAE_PREFIX):
        return None, "unknown", "original", "a standalone VAE, not a whole model"
    if any_prefix("text_model.", "transformer.", "embeddings."):
        return None, "unknown", "original", "a standalone text encoder, not a whole model"
    sample = ", ".join(sorted(keys)[:3]) or "no tensors"
    return None, "unknown", "original", f"unrecognised weights ({sample}, ...)"


_FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL"}


def _missing_components(shapes: dict[str, list[int]], family: Family | None) -> tuple[str, ...]:
    needed = {"unet": UNET_PREFIX, "vae": VAE_PREFIX}
    if family == "sdxl":
        needed["text_encoder"] = SDXL_CLIP_L_PREFIX
        needed["text_encoder_2"] = SDXL_CLIP_G_PREFIX
    else:
        needed["text_encoder"] = CLIP_PREFIX
    return tuple(
        name for name, prefix in needed.items() if not any(k.startswith(prefix) for k in shapes)
    )


def _dominant_dtype(header: dict[str, Any]) -> str:
    """The dtype holding most bytes (a fp16 UNet with a fp32 VAE is a fp16 checkpoint)."""
    weight: Counter[str] = Counter()
    for name, entry in header.items():
        if name != "__metadata__":
            begin, end = entry["data_offsets"]
            weight[entry["dtype"]] += end - begin or 1
    if not weight:
        return "none"
    dtype = weight.most_common(1)[0][0]
    return _TORCH_DTYPE_NAMES.get(dtype, dtype.lower())


def expect_kind(info: CheckpointInfo, kind: Literal["pipeline", "controlnet"], path: Path) -> None:
    """Raise one clear `SdenhanceError` when `info` is not the kind of file the caller needs."""
    if info.kind == kind and not (kind == "pipeline" and info.missing):
        return
    if kind == "pipeline":
        if info.kind == "controlnet":
            raise SdenhanceError(
                f"{path} is {info.detail}, not a Stable Diffusion checkpoint",
                hint="pass it with --controlnet, and the base model with --model",
            )
        if info.kind == "pipeline":
            raise SdenhanceError(
                f"{path} is {info.detail} but lacks the weights of {', '.join(info.missing)}",
                hint="use a full checkpoint that bundles UNet, VAE and text encoder(s)",
            )
        raise SdenhanceError(
            f"{path} is {info.detail}; a Stable Diffusion 1.5 or SDXL checkpoint is needed",
            hint="pass a full .safetensors checkpoint, a diffusers folder or a hub id to --model",
        )
    if info.kind == "pipeline":
        raise SdenhanceError(
            f"{path} is {info.detail}, not a ControlNet",
            hint="pass it with --model, and a tile ControlNet with --controlnet",
        )
    raise SdenhanceError(
        f"{path} is {info.detail}; an SD 1.5 or SDXL ControlNet is needed",
        hint="pass a ControlNet .safetensors, folder or hub id to --controlnet",
    )


# --------------------------------------------------------------------------------------------
# Pickles
# --------------------------------------------------------------------------------------------


def _looks_like_pickle(head: bytes) -> bool:
    """torch's zip format, or a raw pickle: the PROTO opcode 0x80 and a protocol number 2-5.

    A safetensors file (8-byte length, then the JSON's `{`) can also start with 0x80 (a header
    length ending in 0x80), so it is ruled out first by its `{` at byte 8.
    """
    if head[8:9] == b"{":
        return False
    return head.startswith(b"PK\x03\x04") or (
        head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"
    )


def is_pickle(path: Path) -> bool:
    """True for torch `.ckpt/.pt/.pth` pickles (zip or legacy), by content, not by extension."""
    with Path(path).open("rb") as f:
        return _looks_like_pickle(f.read(9))


def load_pickle_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a pickle checkpoint, unpickled weights-only: never executes code from the file.

    A file that needs anything beyond tensors and plain containers is refused, never retried
    with `weights_only=False`. A nested `state_dict` is unwrapped; non-tensor entries
    (`global_step`, ...) are dropped.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        # a file object, not a path: torch >= 2.13 picks the loader by the path's extension
        with path.open("rb") as f:
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message starts with how to load the file anyway (with terminal escapes);
        # the reason is on its `WeightsUnpickler error:` line
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
        found = re.search(r"WeightsUnpickler error: (.*?)(?:\.\s|\.?$)", text, re.M)
        reason = found.group(1) if found else text.splitlines()[0] if text else type(e).__name__
        raise SdenhanceError(
            f"refusing to unpickle {path}: it holds more than plain weights ({reason})",
            hint="use a .safetensors version of this model",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise _corrupt(path, f"torch cannot read it ({type(e).__name__})") from None
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SdenhanceError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a dict of weights"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise SdenhanceError(f"checkpoint {path} holds no weights")
    return tensors


def convert_pickle_to_safetensors(path: Path, out_dir: Path) -> Path:
    """Weights-only load of a pickle, saved once as `.safetensors` in `out_dir` (keyed by sha256).

    Lets the engine load `--allow-pickle` checkpoints through the same single-file path; a second
    call with the same file returns the cached conversion without unpickling again.
    """
    path = Path(path)
    digest = sha256_file(path)
    out = Path(out_dir) / f"{path.stem}-{digest[:16]}.safetensors"
    if out.is_file():
        try:
            check_safetensors(out)
            return out
        except SdenhanceError:
            log.info("re-converting %s: cached %s is damaged", path, out)
    tensors = load_pickle_weights(path)
    # safetensors refuses tensors that share storage; give each its own
    seen: set[tuple[int, int]] = set()
    unshared: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        storage = (value.untyped_storage().data_ptr(), value.untyped_storage().nbytes())
        unshared[key] = value.clone() if storage in seen else value
        seen.add(storage)
    log.info("converted %s to %s", path, out)
    return _write_safetensors(unshared, out)


# --------------------------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------------------------

_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """SHA-256 of the whole file, streamed; cached per (path, size, mtime) for this process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def short_hash(path: Path) -> str:
    """A1111's "Model hash": the first 10 hex digits of the file's SHA-256 (Civitai's AutoV2)."""
    return sha256_file(path)[:10]


def diffusers_config_repo(path: Path) -> str | None:
    """The hub repo whose configs diffusers' `from_single_file` will look for, when given no `config`.

    Runs diffusers' own key rules on the header's shapes (meta tensors, no data), so the engine
    can name the exact repo that must be cached offline. None for files that are not SD models.
    """
    import torch
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    header = check_safetensors(Path(path))
    shapes = {k: v["shape"] for k, v in header.items() if k != "__metadata__"}
    if _classify(shapes)[1] == "unknown":
        return None
    meta = {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
    return fetch_diffusers_config(meta)["pretrained_model_name_or_path"]
