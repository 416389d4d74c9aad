"""`sdenhance doctor`: device, dtype, attention, extras and cached models of this machine."""

from __future__ import annotations

import importlib.util
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.models.config import DEFAULTS, user_config_path
from sdenhance.models.device import (
    attention_backend,
    cpu_bf16_speedup,
    cpu_has_native_bf16,
    pick_device,
    pick_dtype,
)
from sdenhance.models.resolve import folder_info, hub_cache_dir, hub_offline

EXTRAS = {
    "xformers": "cuda",
    "controlnet_aux": "aux",
    "spandrel": "upscalers",
    "onnxruntime": "onnx",
    "pillow_heif": "heic",
}


def cached_models() -> list[dict[str, Any]]:
    """Diffusers pipelines and ControlNets found in the Hugging Face cache."""
    found = []
    root = hub_cache_dir()
    if not root.is_dir():
        return found
    for repo in sorted(root.glob("models--*")):
        for snap in sorted((repo / "snapshots").glob("*")):
            try:
                family, inpaint, role = folder_info(snap, "pipeline")
            except (SdenhanceError, OSError, ValueError):
                continue
            name = repo.name[len("models--") :].replace("--", "/")
            found.append({"id": name, "family": family, "role": role, "inpaint": inpaint})
            break
    return found


def doctor_report() -> dict[str, Any]:
    """What this machine offers: device, dtype, attention, versions, extras, cached models."""
    import diffusers
    import torch
    import transformers

    device = pick_device("auto")
    report: dict[str, Any] = {
        "device": str(device),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "dtype": str(pick_dtype("auto", device)).replace("torch.", ""),
        "attention": attention_backend(device),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "hf_cache": str(hub_cache_dir()),
        "offline": hub_offline(),
        "extras": {name: importlib.util.find_spec(name) is not None for name in EXTRAS},
        "models": cached_models(),
        "defaults": {
            fam: {k: v for k, v in d.items() if k != "resolution"} for fam, d in DEFAULTS.items()
        },
        "config_file": str(user_config_path()) if user_config_path().is_file() else None,
    }
    if device.type == "cpu":
        report["cpu_native_bf16"] = cpu_has_native_bf16()
        report["cpu_bf16_speedup"] = round(cpu_bf16_speedup(), 2)
    return report
