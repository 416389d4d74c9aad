"""Samplers by the names users know (A1111 style), mapped to diffusers schedulers and their options."""

from __future__ import annotations

from typing import Any

from sdenhance.errors import SdenhanceError

# name -> (diffusers scheduler class, extra config, A1111 sampler name)
SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "dpmpp-2m-karras": (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "algorithm_type": "dpmsolver++"},
        "DPM++ 2M Karras",
    ),
    "dpmpp-2m": (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": False, "algorithm_type": "dpmsolver++"},
        "DPM++ 2M",
    ),
    "dpmpp-2m-sde-karras": (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"},
        "DPM++ 2M SDE Karras",
    ),
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun"),
    "pndm": ("PNDMScheduler", {}, "PLMS"),
}


DEFAULT_SCHEDULER = "dpmpp-2m-karras"


def make_scheduler(name: str, base_config: Any):
    """A fresh scheduler `name` built from a pipeline's scheduler config (never shared state)."""
    import diffusers

    if name not in SCHEDULERS:
        raise SdenhanceError(f"`--scheduler` must be one of {', '.join(SCHEDULERS)}; got {name!r}")
    cls_name, extra, _ = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config(base_config, **extra)
