"""Option fields for stage dataclasses: defaults, bounds and a one-line help each.

Stages declare frozen dataclasses with `option(...)` fields; `validate` checks every bound
before any model loads and names the option, the value and what is allowed. Recipes and presets
build options from plain mappings with `from_mapping`, which rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from .errors import SdenhanceError

T = TypeVar("T")


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


def _allowed(meta: Mapping[str, Any]) -> str:
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
        raise SdenhanceError(f"{prefix}`{name}` must be {_allowed(meta)}; got {value!r}")
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
        raise SdenhanceError(f"{prefix}`{name}` must be {_allowed(meta)}; got {value!r}")


def validate(opts: Any, *, where: str = "") -> None:
    """Check every field of an options dataclass against its declared bounds."""
    for f in dataclasses.fields(opts):
        check_value(f.name, getattr(opts, f.name), f.metadata, where=where)
    extra = getattr(opts, "check", None)
    if callable(extra):
        extra()


def describe(cls: type) -> list[dict[str, Any]]:
    """Name, default, help and allowed values of each option (for help texts and docs)."""
    return [
        {
            "name": f.name,
            "default": f.default,
            "help": f.metadata.get("help", ""),
            "allowed": _allowed(f.metadata),
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
        return float(value)
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
