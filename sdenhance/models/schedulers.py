"""Samplers by their A1111 names, mapped to diffusers schedulers and their options."""

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
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
}


DEFAULT_SCHEDULER = "dpmpp-2m-karras"


# what diffusers' Stable Diffusion pipelines set on an outdated scheduler config when they are
# built (a config without `clip_sample` makes DDIM clip its x0 prediction to [-1, 1])
CONFIG_FIXES: dict[str, Any] = {"steps_offset": 1, "clip_sample": False}


def make_scheduler(name: str, base_config: Any):
    """A fresh scheduler `name` built from a pipeline's scheduler config (never shared state).

    The config gets `CONFIG_FIXES`, as Stable Diffusion pipelines give it, so every loop
    (ours and each pipeline's) samples with the same settings.
    """
    import diffusers

    if name not in SCHEDULERS:
        raise SdenhanceError(f"`--scheduler` must be one of {', '.join(SCHEDULERS)}; got {name!r}")
    cls_name, extra, _ = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    return cls.from_config({**dict(base_config), **CONFIG_FIXES}, **extra)
