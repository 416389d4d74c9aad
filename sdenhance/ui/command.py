"""The `sdenhance` command line that reproduces a result, from the run record saved in it.

A one-stage job becomes that stage's command with every option that differs from the stage's
default, the recorded seed and models, and the image roles by the names the page gives them;
flags are looked up in the CLI itself, so the command never names a flag the CLI lacks. Anything
else (a recipe, several steps) becomes `sdenhance run --from OUTPUT INPUT`, which re-runs the
record as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from sdenhance.cli.stage_options import REPEATED, flag_name
from sdenhance.stages import get_stage
from sdenhance.ui.schema import ROLES

DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
MODEL_FLAGS = {"model": "--model", "controlnet": "--controlnet", "inpaint_model": "--inpaint-model"}


@functools.cache
def command_flags(name: str) -> frozenset[str] | None:
    """Every flag the CLI command `name` takes, or None when there is no such command."""
    import typer

    from sdenhance.cli import color, expand, facefix, img2img, inpaint, upscale

    for module in (upscale, img2img, inpaint, facefix, expand, color):
        command = typer.main.get_command(module.app)
        if hasattr(command, "commands"):  # a module with several commands
            command = command.commands.get(name)
        if command is not None and command.name == name:
            return frozenset(opt for p in command.params for opt in (*p.opts, *p.secondary_opts))
    return None


def _value_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def option_words(stage: str, options: Mapping[str, Any]) -> list[str]:
    """`--flag value` for each option that differs from the stage's default."""
    defaults = {f.name: f.default for f in dataclasses.fields(get_stage(stage).Options)}
    words: list[str] = []
    for name, value in options.items():
        if isinstance(value, list):  # JSON gives lists where the options hold tuples
            value = tuple(value)
        if name not in defaults or value == defaults[name] or value is None:
            continue
        flag = REPEATED.get(name) or flag_name(name)
        if isinstance(value, tuple):  # repeatable flags: --lora a --lora b
            for item in value:
                words += [flag, _value_text(item)]
        elif isinstance(value, bool):
            words.append(flag if value else "--no-" + flag[2:])
        else:
            words += [flag, _value_text(value)]
    return words


def _model_words(record: Mapping[str, Any], flags: frozenset[str]) -> list[str]:
    models = record.get("models")
    if not isinstance(models, Mapping):
        return []
    words: list[str] = []
    for role, flag in MODEL_FLAGS.items():
        value = models.get(role)
        if isinstance(value, str) and value and flag in flags:
            words += [flag, value]
    dtype = DTYPES.get(str(models.get("dtype", "")))
    if dtype and "--dtype" in flags:
        words += ["--dtype", dtype]
    return words


def cli_command(
    record: Mapping[str, Any], *, output: str, names: Mapping[str, str] | None = None
) -> str:
    """The shell command that makes `output` again. `names` maps image roles (`image`, `mask`,
    `reference`, `original`) to the file names the user has them under."""
    names = dict(names or {})
    recorded = record.get("input")
    image = names.get("image") or (recorded.get("name") if isinstance(recorded, Mapping) else "")
    image = image or "INPUT.png"
    steps = record.get("steps") if isinstance(record.get("steps"), list) else []
    stage = steps[0].get("stage") if len(steps) == 1 and isinstance(steps[0], Mapping) else None
    flags = command_flags(stage) if isinstance(stage, str) and not record.get("recipe") else None
    if flags is None:
        return shlex.join(["sdenhance", "run", "--from", output, image])

    words = ["sdenhance", stage, image]
    for role in ROLES.get(stage, ()):
        words += [f"--{role}", names.get(role) or f"{role}.png"]
    words += option_words(stage, steps[0].get("options") or {})
    seed = record.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and "--seed" in flags:
        words += ["--seed", str(seed)]
    if "--no-input-prompt" in flags:  # the server never takes a prompt from an upload
        words.append("--no-input-prompt")
    words += _model_words(record, flags)
    stem = PurePath(output).stem
    words += ["-o", f"{stem}-cli.png"]
    return shlex.join(words)
