"""Option fields for stage dataclasses: defaults, bounds and a one-line help each.

Stages declare frozen dataclasses with `option(...)` fields; `validate` checks every bound
before any model loads and names the option, the value and what is allowed. Recipes and presets
build options from plain mappings with `from_mapping`, which rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sdenhance.errors import SdenhanceError

T = TypeVar("T")

MAX_SIDE = 65_535
"""Largest width or height any option may ask for (JPEG's limit; far beyond the pixel cap)."""

MAX_TEXT = 65_536
"""Longest text option (prompts): far above what a text encoder reads, short enough to parse."""


def shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut for a one-line message (a 5,000-digit number stays readable)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return (
            f"a {len(str(abs(value)))}-digit number"
            if value.bit_length() < 14000
            else "a huge number"
        )
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def option(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    multiple_of: int | None = None,
    nullable: bool = False,
) -> Any:
    """A dataclass field carrying its help text and bounds."""
    meta = {
        "help": help,
        "ge": ge,
        "le": le,
        "gt": gt,
        "lt": lt,
        "choices": tuple(choices) if choices is not None else None,
        "multiple_of": multiple_of,
        "nullable": nullable or default is None,
    }
    return dataclasses.field(default=default, metadata=meta)


def describe_allowed(meta: Mapping[str, Any]) -> str:
    parts = []
    if meta.get("choices") is not None:
        parts.append("one of " + ", ".join(str(c) for c in meta["choices"]))
    lo = ("≥", meta["ge"]) if meta.get("ge") is not None else (">", meta.get("gt"))
    hi = ("≤", meta["le"]) if meta.get("le") is not None else ("<", meta.get("lt"))
    if lo[1] is not None:
        parts.append(f"{lo[0]} {lo[1]}")
    if hi[1] is not None:
        parts.append(f"{hi[0]} {hi[1]}")
    if meta.get("multiple_of"):
        parts.append(f"a multiple of {meta['multiple_of']}")
    return " and ".join(parts) if parts else "any value"


def check_value(name: str, value: Any, meta: Mapping[str, Any], *, where: str = "") -> None:
    """Raise `SdenhanceError` if `value` breaks the bounds in `meta`."""
    prefix = f"{where}: " if where else ""
    if value is None:
        if meta.get("nullable"):
            return
        raise SdenhanceError(f"{prefix}`{name}` is required")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise SdenhanceError(
            f"{prefix}`{name}` must be {describe_allowed(meta)}; got {shown(value)}"
        )
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise SdenhanceError(
            f"{prefix}`{name}` is {len(value):,} characters long; the limit is {MAX_TEXT:,}"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise SdenhanceError(f"{prefix}`{name}` must be a finite number; got {value!r}")
    bad = (
        (meta.get("ge") is not None and value < meta["ge"])
        or (meta.get("le") is not None and value > meta["le"])
        or (meta.get("gt") is not None and value <= meta["gt"])
        or (meta.get("lt") is not None and value >= meta["lt"])
        or (meta.get("multiple_of") and int(value) % meta["multiple_of"] != 0)
    )
    if bad:
        raise SdenhanceError(
            f"{prefix}`{name}` must be {describe_allowed(meta)}; got {shown(value)}"
        )


@functools.cache
def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """Allowed runtime types per field, from the annotations (None left out: `nullable` rules)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[type, ...]] = {}
    for name, hint in hints.items():
        args = (
            typing.get_args(hint)
            if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
            else (hint,)
        )
        allowed = tuple(typing.get_origin(a) or a for a in args if a is not type(None))
        if float in allowed:
            allowed += (int,)
        out[name] = allowed
    return out


def _type_name(allowed: tuple[type, ...]) -> str:
    names = {"str": "text", "float": "a number", "int": "a whole number", "bool": "true or false"}
    if float in allowed:
        allowed = tuple(t for t in allowed if t is not int)
    return " or ".join(dict.fromkeys(names.get(t.__name__, t.__name__) for t in allowed))


def validate(opts: Any, *, where: str = "") -> None:
    """Check every field of an options dataclass against its declared type and bounds."""
    prefix = f"{where}: " if where else ""
    types_ = _field_types(type(opts))
    for f in dataclasses.fields(opts):
        value = getattr(opts, f.name)
        allowed = types_.get(f.name)
        if value is not None and allowed:
            ok = isinstance(value, allowed) and not (
                isinstance(value, bool) and bool not in allowed
            )
            if not ok:
                raise SdenhanceError(
                    f"{prefix}`{f.name}` must be {_type_name(allowed)}; got {shown(value)}"
                )
        check_value(f.name, value, f.metadata, where=where)
    extra = getattr(opts, "check", None)
    if callable(extra):
        try:
            extra()
        except SdenhanceError as exc:
            if not where or str(exc).startswith(prefix):
                raise
            raise SdenhanceError(prefix + str(exc)) from None


def describe(cls: type) -> list[dict[str, Any]]:
    """Name, default, help and allowed values of each option (for help texts and docs)."""
    return [
        {
            "name": f.name,
            "default": f.default,
            "help": f.metadata.get("help", ""),
            "allowed": describe_allowed(f.metadata),
        }
        for f in dataclasses.fields(cls)
    ]


def _coerce(value: Any, default: Any) -> Any:
    """Bring TOML/`--set` values to the type of the default (int for float fields is fine)."""
    if isinstance(value, str) and default is not None and not isinstance(default, str):
        text = value.strip()
        if isinstance(default, bool):
            if text.lower() in {"true", "1", "yes", "on"}:
                return True
            if text.lower() in {"false", "0", "no", "off"}:
                return False
            return value
        try:
            if isinstance(default, int):
                return int(text)
            if isinstance(default, float):
                return float(text)
        except ValueError:
            return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # beyond any float: the bounds check refuses it as it is
            return value
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def from_mapping(cls: type[T], values: Mapping[str, Any], *, where: str = "") -> T:
    """Build and validate `cls` from a mapping; unknown keys are errors that suggest a fix."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}: " if where else ""
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, list(names), n=1)
            hint = f"did you mean `{close[0]}`?" if close else "allowed: " + ", ".join(names)
            raise SdenhanceError(f"{prefix}unknown option `{key}`; {hint}")
    kwargs = {k: _coerce(v, names[k].default) for k, v in values.items()}
    opts = cls(**kwargs)
    validate(opts, where=where)
    return opts


def to_dict(opts: Any) -> dict[str, Any]:
    """Plain dict of an options dataclass (for metadata)."""
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}
