"""Typer options generated from a stage's `Options`: the CLI, API and recipes cannot disagree.

Every field of a stage's frozen options dataclass becomes `--field-name` with the field's own
help text, its allowed values and its default. The options default to None ("not given"), so a
preset's values and then the stage's defaults apply; the command receives the given ones as a
`values` dict and builds the options with `build_options`, which checks the bounds once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from sdenhance.cli.panels import (
    P_COLOUR,
    P_DIFF,
    P_FACES,
    P_FAST,
    P_MASK,
    P_OPTIONS,
    P_PROMPT,
    P_SIZE,
    P_TILE,
)
from sdenhance.stages import get_stage

# the help panel of each field name; a stage's own fields fall back to its default panel
PANELS: dict[str, str] = {
    **dict.fromkeys(("prompt", "negative_prompt", "loras", "embeddings", "clip_skip"), P_PROMPT),
    **dict.fromkeys(
        (
            "creativity",
            "resemblance",
            "strength",
            "steps",
            "guidance",
            "scheduler",
            "upscaler",
            "refine",
            "refine_strength",
        ),
        P_DIFF,
    ),
    **dict.fromkeys(
        ("scale", "width", "height", "left", "right", "top", "bottom", "aspect", "anchor"), P_SIZE
    ),
    **dict.fromkeys(("tile", "overlap", "tile_batch", "vae_tile"), P_TILE),
    **dict.fromkeys(("color_fix", "color_match", "opacity", "blend"), P_COLOUR),
    **dict.fromkeys(
        ("fast", "cfg_end", "token_merging", "cache_interval", "control_cond_only"), P_FAST
    ),
}
STAGE_PANELS: dict[str, str] = {
    "facefix": P_FACES,
    "colorfix": P_COLOUR,
    "blend": P_COLOUR,
    "denoise": P_COLOUR,
    "inpaint": P_MASK,
    "remove": P_MASK,
    "expand": P_MASK,
}
# short flags users type, and the older flag names kept as aliases (names are a contract)
SHORT: dict[str, tuple[str, ...]] = {"prompt": ("-p",), "negative_prompt": ("-n",)}
ALIASES: dict[tuple[str, str], tuple[str, ...]] = {("remove", "refine_strength"): ("--strength",)}
# list fields: a repeatable flag named for one item (`--lora A --lora B` -> loras=(A, B))
REPEATED: dict[str, str] = {"loras": "--lora", "embeddings": "--embedding"}
STRENGTH_SHORT = "-s"  # the field a command calls strength (or refine_strength) takes -s


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value_type(hint: Any) -> type:
    """The one non-None type of a field annotation (`int | None` -> int)."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    return kinds[0] if len(kinds) == 1 else str


def allowed_text(meta: Any) -> str:
    """What a field allows, as help reads it: `0–1`, `≥ 64, a multiple of 8`, `one of a, b`."""
    if meta.get("choices") is not None:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    lo = meta.get("ge") if meta.get("ge") is not None else meta.get("gt")
    hi = meta.get("le") if meta.get("le") is not None else meta.get("lt")
    open_lo, open_hi = meta.get("ge") is None, meta.get("le") is None
    parts = []
    if lo is not None and hi is not None:
        parts.append(f"{'>' if open_lo else ''}{lo:g}–{hi:g}{' (exclusive)' if open_hi else ''}")
    elif lo is not None:
        parts.append(f"{'>' if open_lo else '≥'} {lo:g}")
    elif hi is not None:
        parts.append(f"{'<' if open_hi else '≤'} {hi:g}")
    if meta.get("multiple_of"):
        parts.append(f"a multiple of {meta['multiple_of']}")
    return ", ".join(parts)


def field_help(stage: str, field: dataclasses.Field) -> str:
    """The help text of a generated option: the field's help, what is allowed, the default."""
    text = field.metadata.get("help", "").rstrip()
    allowed = allowed_text(field.metadata)
    parts = [text if text.endswith(".") else text + "."]
    if allowed:
        parts.append(
            f"Range: {allowed}." if not allowed.startswith("one of") else f"{allowed.capitalize()}."
        )
    default = field.default
    if default is not None and default not in ("", ()) and not isinstance(default, bool):
        parts.append(f"Default: {default}.")
    elif isinstance(default, bool):
        parts.append(f"Default: {'on' if default else 'off'}.")
    return escape(" ".join(parts))


def option_parameter(
    stage: str, field: dataclasses.Field, hints: dict[str, Any]
) -> inspect.Parameter:
    """One keyword-only Typer parameter for `field` of `stage`'s options, default None."""
    kind = _value_type(hints[field.name])
    flag = REPEATED.get(field.name) or flag_name(field.name)
    if typing.get_origin(kind) is tuple:
        kind = list[str]
    names: tuple[str, ...] = (f"{flag}/--no-{flag[2:]}",) if kind is bool else (flag,)
    names += ALIASES.get((stage, field.name), ())
    names += SHORT.get(field.name, ())
    if field.name in ("strength", "refine_strength"):
        names += (STRENGTH_SHORT,)
    panel = PANELS.get(field.name) or STAGE_PANELS.get(stage, P_OPTIONS)
    option = typer.Option(
        *names, help=field_help(stage, field), rich_help_panel=panel, show_default=False
    )
    return inspect.Parameter(
        field.name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[kind | None, option],
        default=None,
    )


def stage_fields(stage: str, skip: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    """The fields of `stage`'s options that become CLI options: its own first, then those it
    inherits (LoRAs, embeddings, clip skip), so `--help` reads in the stage's order."""
    cls = get_stage(stage).Options
    inherited = {
        f.name
        for base in cls.__mro__[1:]
        if dataclasses.is_dataclass(base)
        for f in dataclasses.fields(base)
    }
    fields = [f for f in dataclasses.fields(cls) if f.name not in skip]
    return [f for f in fields if f.name not in inherited] + [
        f for f in fields if f.name in inherited
    ]


def stage_options(
    stage: str, *, skip: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per field of `stage`'s `Options` (except `skip`).

    The command takes a parameter `values` and receives there the options the user gave
    (None-valued ones dropped), ready for a preset merge and `build_options`.
    """
    fields = stage_fields(stage, skip)
    hints = typing.get_type_hints(get_stage(stage).Options)
    generated = [option_parameter(stage, f, hints) for f in fields]
    names = [p.name for p in generated]

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "values"]
        clash = {p.name for p in own} & set(names)
        if clash:
            raise TypeError(f"{fn.__name__} declares stage options itself: {sorted(clash)}")

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            given = {n: kwargs.pop(n) for n in names}
            values = {
                k: tuple(v) if isinstance(v, list) else v
                for k, v in given.items()
                if v is not None and v != []  # an unrepeated list flag is "not given"
            }
            return fn(*args, values=values, **kwargs)

        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            if p.kind == p.POSITIONAL_OR_KEYWORD
            else p
            for p in own
        ]
        positional = [p for p in own if p.default is inspect.Parameter.empty]
        rest = [p for p in own if p.default is not inspect.Parameter.empty]
        command.__signature__ = sig.replace(parameters=positional + generated + rest)  # type: ignore[attr-defined]
        return command

    return wrap
