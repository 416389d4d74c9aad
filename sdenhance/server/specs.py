"""What a job runs, checked before it is queued: validated steps, no server-side paths.

A request names a stage (with options and an optional preset) or a recipe (with `--set`-style
overrides); both become a list of `RecipeStep`s validated exactly as the CLI validates them, so
an option error is the CLI's one-line message. On top of that the server refuses any option value
that could name a file on the server (an upscaler `.pth`, a detector `.onnx`, a recipe or preset
path): a client may only pick from what the server already offers by name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.recipes import Recipe, RecipeStep, load_recipe, parse_sets
from sdenhance.stages import build_options, get_stage

ROLES = ("image", "mask", "reference", "original")
"""Upload roles: the input, and the extra images stages read from `ctx.images`."""

FREE_TEXT = frozenset({"prompt", "negative_prompt"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,63}$")


@dataclass
class JobSpec:
    """Everything a job needs, decided before it is queued.

    `images` maps a role (`ROLES`) to a file the queue owns or trusts; `prepare(images)` may
    change the loaded images in place before the steps run (A1111's mask inversion, say) and
    `finish(image)` the result before it is saved (A1111's crop-to-fit). `label` names the job
    in its status and output file; `warnings` travel with its status.
    """

    steps: list[RecipeStep]
    images: dict[str, Path]
    label: str
    recipe: Recipe | None = None
    seed: int | None = None
    input_name: str = "upload"
    prepare: Callable[[dict[str, Image.Image]], None] | None = None
    finish: Callable[[Image.Image], Image.Image] | None = None
    warnings: list[str] = field(default_factory=list)


def check_name(spec: str, what: str) -> str:
    """A preset or recipe given by a client must be a plain name, never a path."""
    if not isinstance(spec, str) or not _NAME.match(spec):
        raise SdenhanceError(
            f"`{what}` must be the name of a {what} this server has (letters, digits, - _ +); "
            f"got {spec!r}"
        )
    return spec


def check_seed(seed: int | None) -> int | None:
    if seed is not None and not 0 <= seed < 2**32:
        raise SdenhanceError(f"`seed` must be in [0, 2^32); got {seed}")
    return seed


def names_a_file(value: str) -> bool:
    """A value that could be read as a path: a separator, a home `~`, or a file suffix."""
    return "/" in value or "\\" in value or value.startswith("~") or bool(Path(value).suffix)


def check_values(values: Mapping[str, Any]) -> None:
    """Refuse path-like values among raw request values (option names, or `--set` keys such
    as `upscale.upscaler`), before any stage's own checks could look for such a file."""
    for key, value in values.items():
        name = str(key).rsplit(".", 1)[-1]
        if name not in FREE_TEXT and isinstance(value, str) and names_a_file(value):
            raise SdenhanceError(
                f"`{key}` = {value!r} looks like a file path; over HTTP only the names the "
                "server lists are accepted"
            )


def check_no_paths(steps: Sequence[RecipeStep]) -> None:
    """Refuse any option value (prompts aside) that could name a file on the server."""
    for step in steps:
        for f in dataclasses.fields(step.options):
            value = getattr(step.options, f.name)
            if f.name in FREE_TEXT or not isinstance(value, str) or not names_a_file(value):
                continue
            where = f"step {step.index} ({step.stage})" if len(steps) > 1 else step.stage
            raise SdenhanceError(
                f"{where}: `{f.name}` = {value!r} looks like a file path; over HTTP only the "
                "names the server lists are accepted"
            )


def stage_steps(
    stage: str, options: Mapping[str, Any] | None = None, *, preset: str | None = None
) -> list[RecipeStep]:
    """One validated step of `stage`; a preset's defaults go under the given options."""
    values = dict(options or {})
    check_values(values)
    if preset:
        from sdenhance.presets import load_preset

        values = {**load_preset(check_name(preset, "preset")).defaults(stage), **values}
    steps = [RecipeStep(1, stage, build_options(stage, values))]
    check_no_paths(steps)
    return steps


def recipe_steps(
    name: str, overrides: Mapping[str, Any] | Sequence[str] | None = None
) -> tuple[Recipe, list[RecipeStep]]:
    """A recipe by name with its overrides resolved and every step validated."""
    if overrides is not None and not isinstance(overrides, Mapping):
        overrides = parse_sets(overrides)
    check_values(overrides or {})
    recipe = load_recipe(check_name(name, "recipe"))
    steps = recipe.validate(overrides or {})
    check_no_paths(steps)
    return recipe, steps


def planned_sizes(steps: Sequence[RecipeStep], size: tuple[int, int]) -> list[tuple[int, int]]:
    """The image size after each step, from the stages that change it (`target_size`)."""
    sizes = []
    for step in steps:
        target = getattr(get_stage(step.stage), "target_size", None)
        if target is not None:
            size = target(size, step.options)
        sizes.append(size)
    return sizes


def check_output_size(
    steps: Sequence[RecipeStep], size: tuple[int, int], max_pixels: int | None
) -> None:
    """Refuse a job whose image would grow past `max_pixels` at any step."""
    if max_pixels is None:
        return
    for step, (w, h) in zip(steps, planned_sizes(steps, size), strict=True):
        if w * h > max_pixels:
            raise SdenhanceError(
                f"{step.stage}: the output would be {w}x{h} ({_pixels(w * h)}), over this "
                f"server's limit of {_pixels(max_pixels)}; ask for a smaller size"
            )


def _pixels(n: int) -> str:
    return f"{n / 1e6:.1f} MP" if n >= 150_000 else f"{n:,} pixels"
