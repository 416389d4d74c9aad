"""What ran, for the output's record: every step with its own options and sizes.

A stage writes what it learned into `ctx.record` (prompt, models, tiles...); each step then
keeps its own copy of those values, the options that had an effect (`in_effect`: at creativity
0 an upscale is the pre-upscaler alone, so its diffusion options are left out) and its sizes.
The top level keeps the first input's size and the last output's. A step that recorded models
ran a diffusion model: it is `generative`, which the A1111 infotext uses to pick its step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from sdenhance.options import to_dict

# run-wide keys that are not a step's own
_RUN_KEYS = {"steps", "seed", "size_in", "size_out", "prompt_source", "recipe", "input", "bits"}


def in_effect(module: ModuleType, opts: Any) -> tuple[frozenset[str], str] | None:
    """The options of `opts` that take effect and why the others do not, or None (all do)."""
    hook = getattr(module, "in_effect", None)
    return hook(opts) if hook is not None else None


def recorded_options(module: ModuleType, opts: Any) -> dict[str, Any]:
    """The options a record shows: those that had an effect."""
    values = to_dict(opts)
    effect = in_effect(module, opts)
    if effect is None:
        return values
    return {k: v for k, v in values.items() if k in effect[0]}


def unused_options(module: ModuleType, opts: Any, given: Iterable[str]) -> tuple[list[str], str]:
    """The options in `given` (what the user set) that `opts` ignores, and why."""
    effect = in_effect(module, opts)
    if effect is None:
        return [], ""
    return [name for name in given if name not in effect[0]], effect[1]


def record_step(
    record: dict[str, Any],
    before: Mapping[str, Any],
    stage: str,
    module: ModuleType,
    opts: Any,
    sizes: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    """Append the step that just ran (its record entries are those changed since `before`)."""
    own = {
        k: v
        for k, v in record.items()
        if k not in _RUN_KEYS and (k not in before or before[k] is not v)
    }
    size_in, size_out = sizes
    step = {
        "stage": stage,
        "options": recorded_options(module, opts),
        "size_in": list(size_in),
        "size_out": list(size_out),
        "generative": "models" in own,
        **{k: v for k, v in own.items() if k not in ("prompt", "negative_prompt")},
    }
    record.setdefault("steps", []).append(step)
    record["size_in"] = before.get("size_in", list(size_in))
    record["size_out"] = list(size_out)
