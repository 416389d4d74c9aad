"""What the page's forms are built from: each stage's `Options`, read field by field.

Help text, bounds (ge/le/gt/lt, multiple_of), choices and default come from the dataclass
field metadata the CLI's flags and the server's checks also use, so a widget can never offer
what the server refuses. Fields that name a server-side resource (`upscaler`, `detector`) get
the names the server offers as choices: over HTTP a path is refused anyway.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from sdenhance.stages import STAGES, get_stage

BOUNDS = ("ge", "le", "gt", "lt", "multiple_of")
ROLES = {
    "inpaint": ("mask",),
    "remove": ("mask",),
    "colorfix": ("reference",),
    "blend": ("original",),
}
"""The images a stage reads besides its input (the upload roles of `/api/v1/jobs`)."""


@dataclasses.dataclass(frozen=True)
class Tab:
    """One tab of the page: the stages it runs (picked by a switch when several), the fields
    shown unfolded (the rest fold under "Advanced")."""

    id: str
    title: str
    stages: tuple[str, ...]
    main: tuple[str, ...]


TABS = (
    Tab(
        "upscale",
        "Upscale",
        ("upscale",),
        (
            "scale",
            "width",
            "height",
            "creativity",
            "resemblance",
            "prompt",
            "negative_prompt",
            "upscaler",
        ),
    ),
    Tab(
        "inpaint",
        "Inpaint",
        ("inpaint",),
        ("prompt", "negative_prompt", "strength", "grow", "feather"),
    ),
    Tab("remove", "Remove", ("remove",), ("method", "grow", "refine", "refine_strength")),
    Tab(
        "facefix",
        "Face fix",
        ("facefix",),
        ("prompt", "negative_prompt", "faces", "order", "strength", "blend"),
    ),
    Tab(
        "expand",
        "Expand",
        ("expand",),
        ("left", "right", "top", "bottom", "aspect", "anchor", "prompt", "negative_prompt"),
    ),
    Tab("colour", "Colour fix / blend", ("colorfix", "blend"), ("method", "strength", "opacity")),
)


def _server_choices() -> dict[str, Callable[[], list[str]]]:
    def upscalers() -> list[str]:
        from sdenhance.upscalers.registry import REGISTRY

        return [info.name for info in REGISTRY]

    def detectors() -> list[str]:
        from sdenhance.detectors.faces import DETECTORS

        return sorted(DETECTORS)

    return {"upscaler": upscalers, "detector": detectors}


def _kind(hint: Any) -> tuple[str, bool]:
    """The JSON kind of a field annotation (`int`, `float`, `str`, `bool`) and nullability."""
    args = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    kinds = [a for a in args if a is not type(None)]
    name = kinds[0].__name__ if len(kinds) == 1 else "str"
    return (name if name in ("int", "float", "bool") else "str"), len(kinds) < len(args)


def field_schema(field: dataclasses.Field, hint: Any, extra: list[str] | None) -> dict[str, Any]:
    """One option as plain data: name, kind, default, help, bounds, choices, nullable."""
    kind, nullable = _kind(hint)
    meta = field.metadata
    choices = meta.get("choices")
    out: dict[str, Any] = {
        "name": field.name,
        "kind": kind,
        "default": field.default,
        "help": meta.get("help", ""),
        "nullable": bool(meta.get("nullable")) or nullable,
        "choices": list(choices) if choices is not None else extra,
    }
    out.update({key: meta.get(key) for key in BOUNDS})
    return out


def stage_schema(stage: str) -> dict[str, Any]:
    """A stage's options in declaration order, with the module's first docstring line."""
    module = get_stage(stage)
    hints = typing.get_type_hints(module.Options)
    server = _server_choices()
    fields = [
        field_schema(f, hints[f.name], server[f.name]() if f.name in server else None)
        for f in dataclasses.fields(module.Options)
    ]
    doc = (module.__doc__ or "").strip().splitlines()
    return {
        "name": stage,
        "summary": doc[0] if doc else "",
        "roles": list(ROLES.get(stage, ())),
        "options": fields,
    }


def preset_defaults() -> dict[str, dict[str, dict[str, Any]]]:
    """Preset name -> stage -> the option values it sets there (stages presets apply to)."""
    from sdenhance.presets import PRESET_STAGES, list_presets

    return {
        preset.name: {s: preset.defaults(s) for s in PRESET_STAGES if s in STAGES}
        for preset, _ in list_presets()
    }


def page_schema() -> dict[str, Any]:
    """Everything the page builds its tabs from: tabs whose stages exist, their options, the
    presets' values per stage."""
    tabs = [t for t in TABS if all(s in STAGES for s in t.stages)]
    stages = {s: stage_schema(s) for t in tabs for s in t.stages}
    return {
        "tabs": [dataclasses.asdict(t) for t in tabs],
        "stages": stages,
        "presets": preset_defaults(),
    }
