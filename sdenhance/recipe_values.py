"""Values in recipe files: `$variable` placeholders, their substitution, and the fitting of
TOML values to each stage option's type, with errors that name the file, step and key."""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.options import shown
from sdenhance.presets import tidy_prompt

PROMPT_OPTIONS = ("prompt", "negative_prompt")

_PLACEHOLDER = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_]\w*)\}|(?P<name>[A-Za-z_]\w*)|(?P<dollar>\$))"
)
_WHOLE = re.compile(r"^\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))$")
IDENT = re.compile(r"^[A-Za-z_]\w*$")


def placeholder_names(value: Any) -> list[str]:
    """Variables referenced in an option value (strings, and lists of them)."""
    if isinstance(value, str):
        return [
            m.group("braced") or m.group("name")
            for m in _PLACEHOLDER.finditer(value)
            if not m.group("dollar")
        ]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in placeholder_names(v)]
    return []


def substitute(key: str, value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, (list, tuple)):
        return [substitute(key, v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = _WHOLE.match(value)
    if whole:
        return values[whole.group(1) or whole.group(2)]

    def text(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        return _as_text(values[m.group("braced") or m.group("name")])

    out = _PLACEHOLDER.sub(text, value)
    return tidy_prompt(out) if key in PROMPT_OPTIONS else out


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stage_fields(recipe: Any, index: int, stage: str) -> dict[str, Any]:
    """Option name -> type hint of a step's stage; an unavailable stage is a user error."""
    from sdenhance.stages import get_stage

    try:
        cls = get_stage(stage).Options
    except SdenhanceError as exc:
        raise SdenhanceError(f"{recipe.source}: step {index}: {exc}") from None
    except ImportError:
        raise SdenhanceError(
            f"{recipe.source}: step {index}: the `{stage}` stage is not available in this build; "
            "remove the step or update sdenhance"
        ) from None
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def check_stages(recipe: Any) -> None:
    from sdenhance.stages import STAGES

    for i, step in enumerate(recipe.steps, 1):
        if step.stage not in STAGES:
            raise SdenhanceError(
                f"{recipe.source}: step {i}: unknown stage `{step.stage}`; "
                + suggest(step.stage, sorted(STAGES), "stages are")
            )


def check_option(recipe: Any, key: str, opt: str, i: int, options: list[dict[str, Any]]) -> None:
    if opt not in options[i]:
        stage = recipe.steps[i].stage
        raise SdenhanceError(
            f"{recipe.source}: `--set {key}`: step {i + 1} ({stage}) has no option `{opt}`; "
            + suggest(opt, list(options[i]))
        )


def suggest(word: str, known: Sequence[str], label: str = "known") -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    return f"{label}: {', '.join(known)}"


def _allows(hint: Any) -> tuple[set[type], bool]:
    """(base types, None allowed) of a type hint; `object` means anything goes."""
    if hint is Any:
        return {object}, True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        kinds: set[type] = set()
        nullable = False
        for arg in typing.get_args(hint):
            sub, none = _allows(arg)
            kinds |= sub
            nullable = nullable or none
        return kinds, nullable
    if hint is type(None):
        return set(), True
    if isinstance(hint, type) and hint in (bool, int, float, str):
        return {hint}, False
    return {object}, False


_KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def fit_value(name: str, value: Any, hint: Any, where: str) -> Any:
    """Bring a value to its option's type (text from `--set` parsed as TOML) or say what's wrong."""
    if hint is None:  # unknown option: build_options names it and suggests a fix
        return value
    kinds, nullable = _allows(hint)
    if object in kinds:
        return value
    if isinstance(value, str) and str not in kinds:
        text = value.strip()
        if nullable and text.lower() in ("none", "null", ""):
            return None
        value = _toml_value(text)
    if value is None and nullable:
        return value
    ok = (
        (bool in kinds and isinstance(value, bool))
        or (int in kinds and isinstance(value, int) and not isinstance(value, bool))
        or (float in kinds and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (str in kinds and isinstance(value, str))
    )
    if not ok:
        want = " or ".join(
            _KIND_WORDS[k] for k in sorted(kinds, key=lambda k: list(_KIND_WORDS).index(k))
        )
        raise SdenhanceError(f"{where}: `{name}` must be {want}; got {shown(value)}")
    if float in kinds and isinstance(value, int) and int not in kinds:
        try:
            return float(value)
        except OverflowError:
            raise SdenhanceError(f"{where}: `{name}` is out of range; got {shown(value)}") from None
    return value


def _toml_value(text: str) -> Any:
    """A `--set` value read as one TOML value (`0.8`, `true`, `"a, b"`), else the text itself.

    Bounded like any untrusted text: long or deeply nested text, an integer of thousands of
    digits and anything that is not exactly one value (`1\nx = 2`) stay text, which the
    option's type check then refuses with a short message.
    """
    if len(text) > 1000 or "\n" in text or "\r" in text:
        return text
    try:
        table = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return text
    return table["v"] if list(table) == ["v"] else text
