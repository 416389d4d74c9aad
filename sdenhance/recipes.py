"""Recipes: `pipelines/*.toml` -> a validated `Recipe`, an ordered list of stage steps.

    name = "gentle-2x"                    # optional: defaults to the file's stem
    description = "..."
    [vars]                                # defaults of `$name` placeholders
    creativity = 0.3
    [[steps]]
    stage = "upscale"
    preset = "portrait"                   # optional: the preset's defaults under `options`
    options = { scale = 2, creativity = "$creativity", prompt = "$prompt, detailed" }

A value that is exactly `$name` (or `${name}`) takes the variable's value and type; inside a
longer string it is replaced as text (`$$` is a literal `$`), and empty comma-separated parts
of a prompt are dropped. A placeholder without a default must be set; all missing ones are
reported together. Every step is checked against its stage's options before any model loads.

Overrides (`--set KEY=VALUE`, applied in this order, later wins):
  NAME=VALUE          a variable; if no variable has that name, the option NAME of every step
                      whose stage has it (e.g. `steps=10`)
  STAGE.OPTION=VALUE  that option of every step of that stage (`upscale.creativity=0.3`)
  N.OPTION=VALUE      that option of step N, counted from 1 (`2.blend=0.8`)
Values are text, read as TOML (`0.8`, `true`, `"a, b"`) where the option is not text.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sdenhance.errors import SdenhanceError
from sdenhance.options import shown
from sdenhance.presets import locate, pydantic_error, read_toml, tidy_prompt

_PLACEHOLDER = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_]\w*)\}|(?P<name>[A-Za-z_]\w*)|(?P<dollar>\$))"
)
_WHOLE = re.compile(r"^\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))$")
_IDENT = re.compile(r"^[A-Za-z_]\w*$")
_PROMPT_OPTIONS = ("prompt", "negative_prompt")


class _StepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    stage: str
    preset: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class _RecipeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    description: str = ""
    vars: dict[str, Any] = Field(default_factory=dict)
    steps: list[_StepFile] = Field(min_length=1)


@dataclass(frozen=True)
class Step:
    """One step as written: a stage, an optional preset and raw option values."""

    stage: str
    options: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None


@dataclass(frozen=True)
class RecipeStep:
    """One step ready to run: its number (from 1), stage and validated options dataclass."""

    index: int
    stage: str
    options: Any


@dataclass(frozen=True)
class Recipe:
    """An ordered list of steps with `$var` defaults; `validate` resolves and checks it."""

    name: str
    steps: tuple[Step, ...]
    description: str = ""
    vars: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def source(self) -> str:
        """How errors name this recipe: its file, else `recipe NAME`."""
        return str(self.path) if self.path is not None else f"recipe {self.name}"

    def variables(self) -> dict[str, list[int]]:
        """Every variable referenced by a step -> the step numbers that use it."""
        used: dict[str, list[int]] = {}
        for i, step in enumerate(self.steps, 1):
            for value in step.options.values():
                for name in _names(value):
                    used.setdefault(name, [])
                    if i not in used[name]:
                        used[name].append(i)
        return used

    def validate(
        self, overrides: Mapping[str, Any] | Sequence[str] | None = None
    ) -> list[RecipeStep]:
        """Resolve variables and overrides and check every step against its stage's options.

        Nothing loads a model here, so a typo fails before any work. `overrides` is a mapping
        of `--set` keys to values, or a list of `KEY=VALUE` strings.
        """
        if overrides is None:
            overrides = {}
        elif not isinstance(overrides, Mapping):
            overrides = parse_sets(overrides)
        options = [_stage_fields(self, i, s.stage) for i, s in enumerate(self.steps, 1)]
        var_values, per_step = self._split_overrides(overrides, options)
        values = {**self.vars, **var_values}
        missing = sorted(set(self.variables()) - set(values))
        if missing:
            names = ", ".join(f"`{m}`" for m in missing)
            sets = " ".join(f"--set {m}=VALUE" for m in missing)
            raise SdenhanceError(
                f"{self.source}: missing variable{'s' if len(missing) > 1 else ''} {names}; "
                f"give {sets} or add defaults under [vars]"
            )
        out = []
        for i, (step, fields) in enumerate(zip(self.steps, options, strict=True), 1):
            where = f"{self.source}: step {i} ({step.stage})"
            raw: dict[str, Any] = {}
            if step.preset:
                from sdenhance.presets import load_preset

                try:
                    raw.update(load_preset(step.preset).defaults(step.stage))
                except SdenhanceError as exc:
                    raise SdenhanceError(f"{where}: {exc}") from None
            raw.update({k: _substitute(k, v, values) for k, v in step.options.items()})
            raw.update(per_step[i - 1])
            fitted = {k: _fit(k, v, fields.get(k), where) for k, v in raw.items()}
            from sdenhance.stages import build_options

            try:
                opts = build_options(step.stage, fitted, where=where)
            except SdenhanceError as exc:  # checks across options may not name the step
                if str(exc).startswith(where):
                    raise
                raise SdenhanceError(f"{where}: {exc}") from None
            out.append(RecipeStep(i, step.stage, opts))
        return out

    def with_input_prompt(self, overrides: Mapping[str, Any], prompt: str | None) -> dict[str, Any]:
        """`overrides` plus the `prompt` variable offered from an input's metadata: used only
        when the recipe has a `prompt` variable and the user set none; joined with its default."""
        out = dict(overrides)
        if prompt and "prompt" in self.variables() and "prompt" not in out:
            from sdenhance.presets import join_prompts

            default = self.vars.get("prompt")
            out["prompt"] = join_prompts(prompt, default if isinstance(default, str) else None)
        return out

    def _split_overrides(
        self, overrides: Mapping[str, Any], options: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Variables, and per-step option values in precedence order (bare < stage < index)."""
        variables = set(self.vars) | set(self.variables())
        stages = [s.stage for s in self.steps]
        bare, by_stage, by_index = [{} for _ in stages], [{} for _ in stages], [{} for _ in stages]
        var_values: dict[str, Any] = {}
        for key, value in overrides.items():
            head, dot, opt = key.partition(".")
            if not dot:
                if key in variables:
                    var_values[key] = value
                    continue
                hits = [i for i, fields in enumerate(options) if key in fields]
                if not hits:
                    known = sorted(variables | {n for f in options for n in f})
                    raise SdenhanceError(
                        f"{self.source}: `--set {key}`: no variable or step option `{key}`; "
                        + _suggest(key, known)
                    )
                for i in hits:
                    bare[i][key] = value
            elif head.isdigit():
                n = int(head)
                if not 1 <= n <= len(stages):
                    raise SdenhanceError(
                        f"{self.source}: `--set {key}`: there is no step {n}; "
                        f"steps are numbered 1 to {len(stages)}"
                    )
                _check_option(self, key, opt, n - 1, options)
                by_index[n - 1][opt] = value
            else:
                if head not in stages:
                    raise SdenhanceError(
                        f"{self.source}: `--set {key}`: no `{head}` step in this recipe; "
                        + _suggest(head, sorted(set(stages)), "steps are")
                    )
                for i, stage in enumerate(stages):
                    if stage == head:
                        _check_option(self, key, opt, i, options)
                        by_stage[i][opt] = value
        per_step = [{**b, **s, **x} for b, s, x in zip(bare, by_stage, by_index, strict=True)]
        return var_values, per_step

    def describe(self) -> list[dict[str, Any]]:
        """Steps as plain data (stage, preset, options as written) for listings."""
        return [
            {
                "step": i,
                "stage": s.stage,
                **({"preset": s.preset} if s.preset else {}),
                "options": dict(s.options),
            }
            for i, s in enumerate(self.steps, 1)
        ]

    @classmethod
    def from_record(cls, record: Any, source: str | os.PathLike[str]) -> Recipe:
        """The steps an output's `sdenhance` metadata says ran (for `sdenhance run --from`);
        the record is checked first (`sdenhance.rerun.parse_record`): it is untrusted input."""
        from sdenhance.rerun import RunRecord, parse_record

        checked = record if isinstance(record, RunRecord) else parse_record(record, source)
        parsed = [Step(step.stage, dict(step.options)) for step in checked.steps]
        name = checked.recipe or "rerun"
        recipe = cls(name=name, steps=tuple(parsed), path=Path(source))
        _check_stages(recipe)
        return recipe


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (`--set`) -> {KEY: VALUE}; the last of a repeated key wins."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise SdenhanceError(
                f"`--set {item}`: use KEY=VALUE, e.g. creativity=0.4, upscale.steps=30 or 2.blend=0.8"
            )
        out[key] = value
    return out


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """The recipe called `name_or_path` (user folder, then bundled) or in that `.toml` file."""
    path = locate("pipelines", os.fspath(name_or_path), "recipe")
    return parse_recipe(read_toml(path), path)


def parse_recipe(data: Mapping[str, Any], path: Path) -> Recipe:
    """A `Recipe` from a TOML table: keys, stage names and variable names checked."""
    data = dict(data)
    name = data.setdefault("name", path.stem)
    if name != path.stem:
        raise SdenhanceError(
            f"{path}: `name` is {name!r} but the file is {path.name}; rename one so they match"
        )
    try:
        parsed = _RecipeFile.model_validate(data)
    except ValidationError as exc:
        # an unknown key explains a missing one (`[[step]]` for `[[steps]]`): report it first
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        loc = err["loc"]
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            # name the step as users count it (from 1) and the key inside it
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(_StepFile.model_fields)
                close = difflib.get_close_matches(str(loc[-1]), list(_StepFile.model_fields), n=1)
                hint = f"did you mean `{close[0]}`?" if close else f"allowed: {allowed}"
                raise SdenhanceError(
                    f"{path}: step {loc[1] + 1}: unknown key `{loc[-1]}`; {hint}"
                ) from None
            key = ".".join(str(p) for p in loc[2:])
            raise SdenhanceError(
                f"{path}: step {loc[1] + 1}: `{key}`: {err['msg']}; got {err.get('input')!r}"
            ) from None
        if err["type"] == "extra_forbidden":
            allowed = list(_RecipeFile.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "allowed: " + ", ".join(allowed)
            raise SdenhanceError(f"{path}: unknown key `{loc[-1]}`; {hint}") from None
        if loc == ("steps",):
            raise SdenhanceError(
                f"{path}: no steps; add at least one [[steps]] table with a `stage`"
            ) from None
        raise pydantic_error(path, exc) from None
    for var in parsed.vars:
        if not _IDENT.match(var):
            raise SdenhanceError(
                f"{path}: [vars] `{var}` is not a valid name; use letters, digits and _"
            )
    recipe = Recipe(
        name=parsed.name,
        description=parsed.description,
        vars=dict(parsed.vars),
        steps=tuple(Step(s.stage, dict(s.options), s.preset) for s in parsed.steps),
        path=path,
    )
    _check_stages(recipe)
    return recipe


def list_recipes() -> list[tuple[Recipe, str]]:
    """Every recipe found, with its source (`user` or `bundled`), sorted by name."""
    from sdenhance.presets import find_files

    return [
        (parse_recipe(read_toml(path), path), source)
        for source, path in find_files("pipelines").values()
    ]


def run_recipe(
    recipe: Recipe | str | os.PathLike[str],
    image: Any,
    *,
    enhancer: Any = None,
    ctx: Any = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    seed: int | None = None,
    steps: Sequence[RecipeStep] | None = None,
) -> Any:
    """Apply a recipe's steps in order to one image (PIL image or path) -> PIL image.

    Every step is validated before anything runs. One `Context` serves all steps, so models
    load once: pass `ctx` (a batch's per-image context) or an `Enhancer`, whose models are
    then reused by later calls; with neither, a fresh `Context` loads what the steps need. The input is
    `ctx.images["original"]` (what `blend` and `colorfix` compare against).
    """
    from sdenhance.io.convert import split_alpha
    from sdenhance.io.load import as_image
    from sdenhance.stages import Context, apply_stage

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    resolved = list(steps) if steps is not None else recipe.validate(overrides)
    if ctx is None:
        ctx = enhancer.context(seed=seed) if enhancer is not None else Context(seed=seed)
    elif seed is not None:
        ctx.seed = seed
    current = as_image(image)
    ctx.images.setdefault("original", split_alpha(current)[0])
    base_progress = ctx.progress
    try:
        for step in resolved:
            label = f"{step.index}/{len(resolved)} {step.stage}"
            ctx.progress = lambda text, done, total, label=label: base_progress(
                f"{label}: {text}", done, total
            )
            try:
                current = apply_stage(step.stage, current, step.options, ctx)
            except SdenhanceError as exc:  # name the step: sizes are only known as it runs
                where = f"{recipe.source}: step {step.index} ({step.stage})"
                if str(exc).startswith(recipe.source):
                    raise
                raise SdenhanceError(f"{where}: {exc}") from None
    finally:
        ctx.progress = base_progress
    ctx.record["recipe"] = recipe.name
    if enhancer is not None:
        if ctx._engine is not None:
            enhancer._engine = ctx._engine
        enhancer.last_record = ctx.record
    return current


# ---------------------------------------------------------------------------------------------
# helpers


def _names(value: Any) -> list[str]:
    """Variables referenced in an option value (strings, and lists of them)."""
    if isinstance(value, str):
        return [
            m.group("braced") or m.group("name")
            for m in _PLACEHOLDER.finditer(value)
            if not m.group("dollar")
        ]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _names(v)]
    return []


def _substitute(key: str, value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, (list, tuple)):
        return [_substitute(key, v, values) for v in value]
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
    return tidy_prompt(out) if key in _PROMPT_OPTIONS else out


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stage_fields(recipe: Recipe, index: int, stage: str) -> dict[str, Any]:
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


def _check_stages(recipe: Recipe) -> None:
    from sdenhance.stages import STAGES

    for i, step in enumerate(recipe.steps, 1):
        if step.stage not in STAGES:
            raise SdenhanceError(
                f"{recipe.source}: step {i}: unknown stage `{step.stage}`; "
                + _suggest(step.stage, sorted(STAGES), "stages are")
            )


def _check_option(
    recipe: Recipe, key: str, opt: str, i: int, options: list[dict[str, Any]]
) -> None:
    if opt not in options[i]:
        stage = recipe.steps[i].stage
        raise SdenhanceError(
            f"{recipe.source}: `--set {key}`: step {i + 1} ({stage}) has no option `{opt}`; "
            + _suggest(opt, list(options[i]))
        )


def _suggest(word: str, known: Sequence[str], label: str = "known") -> str:
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


def _fit(name: str, value: Any, hint: Any, where: str) -> Any:
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
