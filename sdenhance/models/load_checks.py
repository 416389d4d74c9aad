"""What a finished diffusers load is checked for, and how its failures are worded.

`from_single_file` builds each model on the meta device and fills it from the checkpoint; a
tensor the file lacks stays on meta, and the first `.to(device)` fails with "Cannot copy out
of meta tensor" far from the cause. `missing_weights` finds those tensors right after the
load, so the error names the file and the weights it lacks. `load_error` turns the exception
types loaders raise for damaged files into one line naming the model.
"""

from __future__ import annotations

from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.io.safe_text import one_line, short


def _modules(loaded: Any) -> dict[str, Any]:
    import torch

    if isinstance(loaded, torch.nn.Module):
        return {"": loaded}
    found = getattr(loaded, "components", {}) or {}
    return {name: m for name, m in found.items() if isinstance(m, torch.nn.Module)}


def missing_weights(loaded: Any) -> list[str]:
    """Names (`unet.conv_in.weight`) of parameters and buffers left without data (on meta)."""
    missing = []
    for prefix, module in _modules(loaded).items():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.is_meta:
                missing.append(f"{prefix}.{name}" if prefix else name)
    return missing


def check_loaded(loaded: Any, source: str) -> None:
    """Refuse a loaded pipeline or model some of whose weights the file did not hold."""
    missing = missing_weights(loaded)
    if missing:
        raise SdenhanceError(
            f"{source} lacks {len(missing)} weight tensor(s) the model needs "
            f"(first: {missing[0]}); the checkpoint is incomplete",
            hint="download it again, or use the full checkpoint",
        )


def load_errors() -> tuple[type[BaseException], ...]:
    """Exception types a loader raises for a damaged file (safetensors' own error included)."""
    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, RuntimeError, NotImplementedError, SafetensorError)


def load_error(what: str, exc: BaseException, hint: str | None = None) -> SdenhanceError:
    """One line for an exception a loader raised on a damaged or mismatched model."""
    text = str(exc).strip()
    if "meta tensor" in text:  # diffusers' words for a tensor the checkpoint did not hold
        return SdenhanceError(
            f"{what} lacks weight tensors the model needs; the checkpoint is incomplete",
            hint="download it again, or use the full checkpoint",
        )
    first = text.splitlines()[0] if text else type(exc).__name__
    return SdenhanceError(f"could not load {what}: {short(one_line(first), 300)}", hint=hint)
