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

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sdenhance.errors import SdenhanceError
from sdenhance.presets import locate, named_after_file, pydantic_error, read_toml
from sdenhance.recipe_values import (
    IDENT,
    check_option,
    check_stages,
    fit_value,
    placeholder_names,
    stage_fields,
    substitute,
    suggest,
)


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
                for name in placeholder_names(value):
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
        options = [stage_fields(self, i, s.stage) for i, s in enumerate(self.steps, 1)]
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
            raw.update({k: substitute(k, v, values) for k, v in step.options.items()})
            raw.update(per_step[i - 1])
            fitted = {k: fit_value(k, v, fields.get(k), where) for k, v in raw.items()}
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
                        + suggest(key, known)
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
                check_option(self, key, opt, n - 1, options)
                by_index[n - 1][opt] = value
            else:
                if head not in stages:
                    raise SdenhanceError(
                        f"{self.source}: `--set {key}`: no `{head}` step in this recipe; "
                        + suggest(head, sorted(set(stages)), "steps are")
                    )
                for i, stage in enumerate(stages):
                    if stage == head:
                        check_option(self, key, opt, i, options)
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
        check_stages(recipe)
        return recipe


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (`--set`) -> {KEY: VALUE}; the last of a repeated key wins."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise SdenhanceError(
                f"`--set {item}`: use KEY=VALUE, e.g. creativity=0.4, upscale.steps=30 or "
                "2.blend=0.8"
            )
        out[key] = value
    return out


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """The recipe called `name_or_path` (user folder, then bundled) or in that `.toml` file."""
    path = locate("pipelines", os.fspath(name_or_path), "recipe")
    return parse_recipe(read_toml(path), path)


def parse_recipe(data: Mapping[str, Any], path: Path) -> Recipe:
    """A `Recipe` from a TOML table: keys, stage names and variable names checked."""
    data = named_after_file(data, path)
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
        if not IDENT.match(var):
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
    check_stages(recipe)
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

    Every step is validated before anything runs. One `Context` serves all steps, so models load
    once: pass `ctx` (a batch's per-image context) or an `Enhancer`, whose models are then reused by
    later calls; with neither, a fresh `Context` loads what the steps need. The input is
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
