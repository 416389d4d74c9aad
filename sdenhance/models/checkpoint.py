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

import logging
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdenhance.errors import SdenhanceError
from sdenhance.io.safe_text import UnsafeJSON, load_json
from sdenhance.models.formats import looks_like_pickle

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


# --------------------------------------------------------------------------------------------
# Header checks and inspection
# --------------------------------------------------------------------------------------------


def corrupt_error(path: Path, reason: str) -> SdenhanceError:
    return SdenhanceError(
        f"checkpoint {path} is corrupt or truncated: {reason}",
        hint="download it again",
    )


def check_safetensors(path: Path) -> dict[str, Any]:
    """Validate a `.safetensors` header against the file before anything loads it; return the
    header.

    Checks what safetensors itself would reject, but with one readable line: the length prefix,
    the JSON, every tensor's dtype × shape against its byte range, ranges inside the file and
    tiling the data section without overlaps or gaps. Reads only the header.
    """
    path = Path(path)
    if not path.is_file():
        raise SdenhanceError(f"checkpoint {path} not found", hint="check the path")
    size = path.stat().st_size
    if size < 8:
        raise corrupt_error(path, f"the file has {size} bytes, fewer than the 8-byte header length")
    with path.open("rb") as f:
        prefix = f.read(8)
        if looks_like_pickle(prefix + f.read(1)):
            raise SdenhanceError(
                f"checkpoint {path} is a pickle (.ckpt/.pt), not safetensors",
                hint="use a .safetensors file, or pass --allow-pickle to load it weights-only",
            )
        (n,) = struct.unpack("<Q", prefix)
        if n > MAX_HEADER_BYTES:
            raise corrupt_error(
                path, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit"
            )
        if 8 + n > size:
            raise corrupt_error(
                path, f"header length {n} points past the end of the {size}-byte file"
            )
        f.seek(8)
        raw = f.read(n)
    try:
        header = load_json(raw.decode("utf-8"), max_chars=MAX_HEADER_BYTES)
    except UnicodeDecodeError as e:
        raise corrupt_error(path, f"header is not UTF-8 ({e.reason} at byte {e.start})") from None
    except UnsafeJSON as e:
        raise corrupt_error(path, f"header is {e}") from None
    if not isinstance(header, dict):
        raise corrupt_error(path, "header is not a JSON object")
    data_size = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            if entry is not None and not isinstance(entry, dict):
                raise corrupt_error(path, "__metadata__ is not a JSON object")
            continue
        spans.append(_check_entry(path, name, entry, data_size))
    spans.sort()
    end = 0
    previous = ""
    for begin, stop, name in spans:
        if begin < end:
            raise corrupt_error(path, f"tensor {name!r} overlaps tensor {previous!r}")
        if begin > end:
            raise corrupt_error(path, f"gap of {begin - end} bytes before tensor {name!r}")
        end, previous = stop, name
    if end != data_size:
        raise corrupt_error(path, f"{data_size - end} bytes after the last tensor")
    return header


def _check_entry(path: Path, name: str, entry: Any, data_size: int) -> tuple[int, int, str]:
    if not isinstance(entry, dict):
        raise corrupt_error(path, f"tensor {name!r} has no dtype/shape/data_offsets")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPE_BITS:
        raise corrupt_error(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise corrupt_error(path, f"tensor {name!r} has an invalid shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise corrupt_error(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, stop = offsets
    if stop > data_size:
        raise corrupt_error(
            path, f"tensor {name!r} ends at byte {stop} of a {data_size}-byte data section"
        )
    numel = 1
    for d in shape:
        numel *= d
    expected = numel * _DTYPE_BITS[dtype] // 8
    if stop - begin != expected:
        raise corrupt_error(
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


# (needed kind, the file's kind) -> what is wrong, and what to do; None: any other file
_WRONG_KIND = {
    ("pipeline", "controlnet"): (
        "{detail}, not a Stable Diffusion checkpoint",
        "pass it with --controlnet, and the base model with --model",
    ),
    ("pipeline", "pipeline"): (
        "{detail} but lacks the weights of {missing}",
        "use a full checkpoint that bundles UNet, VAE and text encoder(s)",
    ),
    ("pipeline", None): (
        "{detail}; a Stable Diffusion 1.5 or SDXL checkpoint is needed",
        "pass a full .safetensors checkpoint, a diffusers folder or a hub id to --model",
    ),
    ("controlnet", "pipeline"): (
        "{detail}, not a ControlNet",
        "pass it with --model, and a tile ControlNet with --controlnet",
    ),
    ("controlnet", None): (
        "{detail}; an SD 1.5 or SDXL ControlNet is needed",
        "pass a ControlNet .safetensors, folder or hub id to --controlnet",
    ),
}


def expect_kind(info: CheckpointInfo, kind: Literal["pipeline", "controlnet"], path: Path) -> None:
    """Raise one clear `SdenhanceError` when `info` is not the kind of file the caller needs."""
    if info.kind == kind and not (kind == "pipeline" and info.missing):
        return
    what, hint = _WRONG_KIND.get((kind, info.kind)) or _WRONG_KIND[(kind, None)]
    text = what.format(detail=info.detail, missing=", ".join(info.missing))
    raise SdenhanceError(f"{path} is {text}", hint=hint)


# --------------------------------------------------------------------------------------------
# Pickles
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------------------------


def diffusers_config_repo(path: Path) -> str | None:
    """The hub repo whose configs diffusers' `from_single_file` will look for, when given no
    `config`.

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
