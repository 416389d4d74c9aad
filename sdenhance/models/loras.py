"""LoRAs applied for one call and gone after it: forward hooks, never changed weights.

Layouts read: Kohya/A1111 (`lora_unet_…`, `lora_te_…`, `lora_te1_…`/`lora_te2_…` with
`lora_down`/`lora_up`/`alpha`; UNet names in diffusers or original SGM block form) and
diffusers/PEFT (`unet.…`, `text_encoder.…`, `text_encoder_2.…` with `lora_A`/`lora_B`).

Why hooks and not diffusers' `load_lora_weights`: that path injects PEFT layers into the shared
UNet and text encoders and needs a PEFT release newer than the one available alongside
transformers 5 for text-encoder LoRAs; `unfuse_lora` restores weights only up to rounding. A
forward hook adds `scale × up(down(x))` to a layer's output (the same maths as an unfused PEFT
layer) and is removed when the call ends, so the shared components stay bit-identical to how
they loaded and the next stage computes exactly what a fresh process would. LyCORIS variants
(LoHa, LoKr, DoRA) are refused by name.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdenhance.errors import SdenhanceError
from sdenhance.models import library
from sdenhance.ops.prompt_syntax import LoraRef

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sdenhance")

_KOHYA = re.compile(r"^lora_(unet|te|te1|te2)_(.+?)\.(lora_down\.weight|lora_up\.weight|alpha)$")
_PEFT = re.compile(
    r"^(unet|text_encoder|text_encoder_2)\.(.+?)\."
    r"(lora_A\.weight|lora_B\.weight|lora\.down\.weight|lora\.up\.weight|alpha)$"
)
_UNSUPPORTED = ("hada_", "lokr_", "dora_scale", "lora_mid", ".oft_", "diff_b", ".diff")
_CACHE: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 4


@dataclass(frozen=True)
class ResolvedLora:
    """A LoRA file found for a name or path, at a weight, with A1111's short hash."""

    name: str
    path: Path
    weight: float
    hash: str

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "hash": self.hash}


def resolve_lora(ref: LoraRef) -> ResolvedLora:
    """The file of a LoRA name or path; not found is a user error naming the folders."""
    from sdenhance.models.hashes import addnet_hash

    path = library.find("loras", ref.name)
    if path is None:
        dirs = ", ".join(str(d) for d in library.search_dirs("loras"))
        raise SdenhanceError(
            f"LoRA `{ref.name}` not found (looked for a file, then a name in: {dirs})",
            hint="give its path, or put the .safetensors file in one of those folders",
        )
    return ResolvedLora(path.stem, path, ref.weight, addnet_hash(path)[:12])


def is_installed(name: str) -> bool:
    return library.find("loras", name) is not None


# ---------------------------------------------------------------------------------------------
# file -> per-layer (down, up, scale)


def read_lora(path: Path, *, allow_pickle: bool) -> dict[str, dict[str, Any]]:
    """{"<component>:<layer name>": {"down", "up", "alpha"}} of a LoRA file (cached)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    tensors = library.read_tensors(path, allow_pickle=allow_pickle, what="LoRA")
    layers: dict[str, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if any(tag in name for tag in _UNSUPPORTED):
            raise SdenhanceError(
                f"LoRA {path.name} uses a LyCORIS/DoRA layer type (`{name}`); only plain "
                "LoRA (and LoCon) layers are supported"
            )
        m = _KOHYA.match(name) or _PEFT.match(name)
        if m is None:
            continue
        component = {"te": "te1", "text_encoder": "te1", "text_encoder_2": "te2"}.get(
            m.group(1), m.group(1)
        )
        part = m.group(3)
        slot = "alpha" if part == "alpha" else "down" if "down" in part or "_A" in part else "up"
        layers.setdefault(f"{component}:{m.group(2)}", {})[slot] = tensor
    if not layers:
        raise SdenhanceError(
            f"{path} holds no LoRA layers this program reads (Kohya/A1111 or diffusers layout)"
        )
    _CACHE[key] = layers
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return layers


# ---------------------------------------------------------------------------------------------
# layer names of a pipeline, in every spelling LoRA files use


def _sgm_name(name: str, per_block: int) -> str | None:
    """The original (SGM/LDM) name of a diffusers UNet layer, for Kohya SDXL files."""
    n = per_block + 1
    resnet = {"conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "conv2": "out_layers.3"}
    resnet["conv_shortcut"] = "skip_connection"

    def rest(kind: str, tail: str) -> str:
        if kind == "attentions":
            return tail
        head, _, more = tail.partition(".")
        return resnet.get(head, head) + (f".{more}" if more else "")

    m = re.match(r"down_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)$", name)
    if m:
        i, kind, j, tail = int(m[1]), m[2], int(m[3]), m[4]
        sub = 1 if kind == "attentions" else 0
        return f"input_blocks.{1 + i * n + j}.{sub}.{rest(kind, tail)}"
    m = re.match(r"up_blocks\.(\d+)\.(attentions|resnets)\.(\d+)\.(.+)$", name)
    if m:
        i, kind, j, tail = int(m[1]), m[2], int(m[3]), m[4]
        sub = 1 if kind == "attentions" else 0
        return f"output_blocks.{i * n + j}.{sub}.{rest(kind, tail)}"
    m = re.match(r"mid_block\.(attentions|resnets)\.(\d+)\.(.+)$", name)
    if m:
        kind, j, tail = m[1], int(m[2]), m[3]
        index = 1 if kind == "attentions" else 2 * j
        return f"middle_block.{index}.{rest(kind, tail)}"
    return None


def layer_table(pipe: Any) -> dict[str, Any]:
    """ "<component>:<name>" -> module for every Linear/Conv2d a LoRA may target, under the
    diffusers name and the Kohya spelling (dots as underscores, SGM names for the UNet)."""
    import torch

    table: dict[str, Any] = {}
    unet = pipe.unet
    per_block = unet.config.layers_per_block
    per_block = per_block if isinstance(per_block, int) else per_block[0]
    for name, module in unet.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            for alias in (name, name.replace(".", "_")):
                table.setdefault(f"unet:{alias}", module)
            sgm = _sgm_name(name, per_block)
            if sgm:
                table.setdefault(f"unet:{sgm.replace('.', '_')}", module)
    encoders = [("te1", getattr(pipe, "text_encoder", None))]
    encoders.append(("te2", getattr(pipe, "text_encoder_2", None)))
    for component, encoder in encoders:
        if encoder is None:
            continue
        for name, module in encoder.named_modules():
            if isinstance(module, torch.nn.Linear):
                full = name if name.startswith("text_model.") else f"text_model.{name}"
                for alias in (name, full, full.replace(".", "_")):
                    table.setdefault(f"{component}:{alias}", module)
    return table


# ---------------------------------------------------------------------------------------------
# applying


@dataclass
class _Delta:
    module: Any
    down: torch.Tensor
    up: torch.Tensor
    scale: float


def plan_deltas(
    pipe: Any, lora: ResolvedLora, family: str, *, allow_pickle: bool = False
) -> list[_Delta]:
    """The per-layer additions of one LoRA; a LoRA for another model family is a user error."""
    import torch

    layers = read_lora(lora.path, allow_pickle=allow_pickle)
    table = layer_table(pipe)
    other = "SD 1.5" if family == "sdxl" else "SDXL"
    wrong = SdenhanceError(
        f"LoRA {lora.name} does not fit this {'SDXL' if family == 'sdxl' else 'SD 1.5'} model "
        f"(it is probably for {other})",
        hint="use a LoRA made for the model's family",
    )
    if family != "sdxl" and any(k.startswith("te2:") for k in layers):
        raise wrong
    deltas: list[_Delta] = []
    missing = 0
    for key, parts in layers.items():
        module = table.get(key)
        if module is None or "down" not in parts or "up" not in parts:
            missing += 1
            continue
        down, up = parts["down"], parts["up"]
        if isinstance(module, torch.nn.Conv2d):
            down = down if down.dim() == 4 else down[:, :, None, None]
            up = up if up.dim() == 4 else up[:, :, None, None]
            fits = (
                down.shape[1] == module.in_channels
                and up.shape[0] == module.out_channels
                and tuple(down.shape[2:]) in ((1, 1), tuple(module.kernel_size))
            )
        else:
            down = down.flatten(1) if down.dim() == 4 and down.shape[2:] == (1, 1) else down
            up = up.flatten(1) if up.dim() == 4 else up
            fits = down.dim() == 2 and down.shape[1] == module.in_features
            fits = fits and up.shape[0] == module.out_features
        if not fits or up.shape[1] != down.shape[0]:
            raise wrong
        rank = down.shape[0]
        alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)
        deltas.append(_Delta(module, down, up, lora.weight * alpha / rank))
    if not deltas:
        raise wrong
    if missing:
        log.warning(
            "LoRA %s: %d of %d layers match nothing in this model and are skipped",
            lora.name,
            missing,
            len(layers),
        )
    return deltas


def _hook(delta: _Delta):
    import torch.nn.functional as F

    module = delta.module
    conv = hasattr(module, "kernel_size")
    cache: dict[tuple[Any, Any], tuple[Any, Any]] = {}

    def add(mod: Any, args: tuple[Any, ...], output: Any) -> Any:
        x = args[0]
        where = (x.device, x.dtype)
        if where not in cache:
            cache[where] = (delta.down.to(*where), delta.up.to(*where))
        down, up = cache[where]
        if conv:
            h = F.conv2d(x, down, None, module.stride, module.padding, module.dilation)
            return output + delta.scale * F.conv2d(h, up)
        return output + delta.scale * F.linear(F.linear(x, down), up)

    return add


@contextlib.contextmanager
def applied(
    pipe: Any, loras: Sequence[ResolvedLora], family: str, *, allow_pickle: bool = False
) -> Iterator[None]:
    """Apply `loras` to the pipeline's UNet and text encoders for the `with` block only."""
    deltas = [
        d
        for lora in loras
        if lora.weight != 0
        for d in plan_deltas(pipe, lora, family, allow_pickle=allow_pickle)
    ]
    handles = [d.module.register_forward_hook(_hook(d)) for d in deltas]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
