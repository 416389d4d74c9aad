"""Stages that are pure colour maths, run on 16-bit pixels so 16-bit inputs stay 16-bit.

Colour fix, blend and a Lanczos/bicubic resize each have a `run_array` on float pixels; when an
input has more than 8 bits (`LoadedImage.deep`), every step of the run is one of those and the
output format keeps 16 bits (PNG, TIFF), the run goes through here instead of `apply_stage`.
The record is the same as the 8-bit run's, plus `"bits": 16`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sdenhance.io.convert import to_array
from sdenhance.io.deep import DeepImage
from sdenhance.stages import Context, get_stage
from sdenhance.stages.records import record_step

DEEP_STAGES = ("colorfix", "blend", "resize")


def deep_capable(stage: str, opts: Any) -> bool:
    """True when `stage` with `opts` is pure colour maths (no model, no 8-bit library)."""
    if stage not in DEEP_STAGES:
        return False
    if stage == "resize":
        from sdenhance.stages.resize import PURE_UPSCALERS

        return opts.upscaler in PURE_UPSCALERS
    return True


def role_arrays(
    ctx: Context, deep_roles: Mapping[str, DeepImage | None] | None = None
) -> dict[str, np.ndarray]:
    """The role images as float arrays: 16-bit where the role's file had 16 bits, else 8-bit."""
    arrays = {k: to_array(v.convert("RGB")) for k, v in ctx.images.items() if k != "mask"}
    for role, deep in (deep_roles or {}).items():
        if deep is not None:
            arrays[role] = deep.floats()
    return arrays


def apply_deep(
    stage: str, image: DeepImage, opts: Any, ctx: Context, refs: Mapping[str, np.ndarray]
) -> DeepImage:
    """One pure-colour stage on deep pixels, recorded like `apply_stage` records it."""
    from sdenhance.ops.resize import resize

    module = get_stage(stage)
    before = dict(ctx.record)
    pixels = np.asarray(module.run_array(image.floats(), opts, refs), dtype=np.float32)
    alpha = image.alpha_floats()
    size_out = (pixels.shape[1], pixels.shape[0])
    if alpha is not None and alpha.shape != pixels.shape[:2]:
        alpha = np.clip(resize(alpha, size_out, "lanczos"), 0.0, 1.0)
    record_step(ctx.record, before, stage, module, opts, (image.size, size_out))
    ctx.record["bits"] = 16
    return DeepImage(pixels, alpha, image.info)


def run_deep(
    steps: Sequence[tuple[str, Any]],
    image: DeepImage,
    ctx: Context,
    deep_roles: Mapping[str, DeepImage | None] | None = None,
) -> DeepImage:
    """`(stage, options)` steps in order on deep pixels; the input is the `original` role."""
    refs = role_arrays(ctx, deep_roles)
    refs.setdefault("original", image.floats())  # as `apply_stage`: the run's input
    for stage, opts in steps:
        image = apply_deep(stage, image, opts, ctx, refs)
    return image
