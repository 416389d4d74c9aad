"""`sdenhance presets`, `recipes` and `run`: named settings, multi-step recipes, re-runs."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sdenhance.cli import common as c
from sdenhance.cli.images import input_record
from sdenhance.cli.networks import installed_only, network_options, warn_changed
from sdenhance.cli.rerun_record import record_of, recorded_dtype, recorded_input
from sdenhance.cli.stage_work import writes_deep
from sdenhance.cli.terminal import literal
from sdenhance.errors import SdenhanceError
from sdenhance.io.formats import SaveOptions
from sdenhance.io.safe_text import terminal_json
from sdenhance.models.config import EngineConfig
from sdenhance.stages import get_stage
from sdenhance.stages.deep import deep_capable
from sdenhance.stages.records import recorded_options

if TYPE_CHECKING:
    from sdenhance.rerun import RunRecord

app = typer.Typer()
log = logging.getLogger("sdenhance")

AsJson = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of a table.", rich_help_panel=c.P_OUT)
]

SET_HELP = (
    "Override a recipe value, repeatable. KEY=VALUE sets the variable KEY (e.g. "
    "creativity=0.4), or, when the recipe has no such variable, the option KEY of every step "
    "that has it (steps=10); STAGE.OPTION=VALUE sets it on every step of that stage "
    "(upscale.creativity=0.3); N.OPTION=VALUE on step N, counted from 1 (2.blend=0.8). "
    "Later kinds win: N.OPTION over STAGE.OPTION over KEY. Values are read as TOML (0.8, "
    "true, none) unless the option is text."
)


def _echo_json(data: Any) -> None:
    c.out_console.print(terminal_json(data, indent=2), markup=False, highlight=False)


def _table(title: str, rows: list[tuple[str, ...]], columns: tuple[str, ...]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    c.out_console.print(table)


@app.command("presets")
def presets(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Preset name or .toml path to show; none lists them all.", show_default=False
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List presets (prompt + stage defaults for upscale, img2img, inpaint), or show one.

    User presets live in $SDENHANCE_HOME/prompts/ (default ~/.config/sdenhance/prompts/) and
    win over bundled ones of the same name. Use one with `--preset NAME`.
    """
    from sdenhance.presets import PRESET_STAGES, home_dir, list_presets, load_preset

    if name is None:
        found = list_presets()
        if as_json:
            _echo_json(
                [
                    {"name": p.name, "description": p.description, "source": s, "path": str(p.path)}
                    for p, s in found
                ]
            )
            return
        _table(
            "presets",
            [(p.name, p.description, s) for p, s in found],
            ("name", "description", "source"),
        )
        c.err_console.print(f"user presets: {home_dir() / 'prompts'}")
        return
    preset = load_preset(name)
    if as_json:
        _echo_json(
            {
                "name": preset.name,
                "description": preset.description,
                "path": str(preset.path),
                **preset.values(),
            }
        )
        return
    c.out_console.print(literal((preset.name, "bold"), f": {preset.description}"))
    c.out_console.print(f"file: {preset.path}", markup=False)
    rows = [(key, str(value)) for key, value in preset.values().items()]
    _table("settings", rows, ("key", "value"))
    applies = ", ".join(stage for stage in PRESET_STAGES if _has_stage(stage))
    c.out_console.print(
        f"applies to: {applies} (each takes the keys its options have)", markup=False
    )


def _has_stage(stage: str) -> bool:
    from sdenhance.stages import get_stage

    try:
        get_stage(stage)
    except (ImportError, SdenhanceError):
        return False
    return True


@app.command("recipes")
def recipes(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Recipe name or .toml path to show; none lists them all.", show_default=False
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List recipes (multi-step pipelines for `sdenhance run`), or show one's steps and variables.

    User recipes live in $SDENHANCE_HOME/pipelines/ (default ~/.config/sdenhance/pipelines/)
    and win over bundled ones of the same name.
    """
    from sdenhance.presets import home_dir
    from sdenhance.recipes import list_recipes, load_recipe

    if name is None:
        found = list_recipes()
        if as_json:
            _echo_json(
                [
                    {"name": r.name, "description": r.description, "source": s, "path": str(r.path)}
                    for r, s in found
                ]
            )
            return
        rows = [
            (r.name, " > ".join(step.stage for step in r.steps), r.description, s) for r, s in found
        ]
        _table("recipes", rows, ("name", "steps", "description", "source"))
        c.err_console.print(f"user recipes: {home_dir() / 'pipelines'}")
        return
    recipe = load_recipe(name)
    used = recipe.variables()
    variables = {v: recipe.vars.get(v, None) for v in sorted(set(recipe.vars) | set(used))}
    if as_json:
        _echo_json(
            {
                "name": recipe.name,
                "description": recipe.description,
                "path": str(recipe.path),
                "vars": variables,
                "steps": recipe.describe(),
            }
        )
        return
    c.out_console.print(literal((recipe.name, "bold"), f": {recipe.description}"))
    c.out_console.print(f"file: {recipe.path}", markup=False)
    rows = []
    for step in recipe.describe():
        opts = ", ".join(f"{k}={v!r}" for k, v in step["options"].items())
        preset = f"preset {step['preset']}" + ("; " if opts else "") if "preset" in step else ""
        rows.append((str(step["step"]), step["stage"], preset + opts))
    _table("steps", rows, ("#", "stage", "options"))
    if variables:
        var_rows = [
            (
                v,
                "(required)" if v not in recipe.vars else repr(d),
                ", ".join(str(i) for i in used.get(v, [])) or "-",
            )
            for v, d in variables.items()
        ]
        _table("variables (--set NAME=VALUE)", var_rows, ("name", "default", "steps"))


@app.command("run")
@c.engine_options("model", "controlnet", "inpaint_model")
@network_options
@c.output_options
def run(
    recipe: Annotated[
        str | None,
        typer.Argument(
            help="Recipe name (see `sdenhance recipes`) or .toml path; with --from, the first "
            "input.",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        list[str] | None, typer.Argument(help="Image files, folders or globs.", show_default=False)
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help=SET_HELP, rich_help_panel=c.P_DIFF, show_default=False),
    ] = None,
    from_image: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Re-run what made this sdenhance output (its steps, seed and models, unless given "
            "here) on the inputs; without inputs, on the original it names, looked for beside it.",
            rich_help_panel=c.P_DIFF,
            show_default=False,
        ),
    ] = None,
    mask: Annotated[
        Path | None,
        typer.Option(
            "--mask",
            help="With --from: the mask to re-run an inpaint/remove output with, instead of the "
            "one stored in it or found beside it by name (which must match its recorded hash).",
            rich_help_panel=c.P_MASK,
            show_default=False,
        ),
    ] = None,
    seed: c.Seed = None,
    no_input_prompt: c.NoInputPrompt = False,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
    networks: dict | None = None,
    saving: SaveOptions | None = None,
) -> None:
    """Run a recipe's steps on images, or re-run an output with --from.

    Every step is checked before any model loads; models load once for all steps and images.
    Outputs go beside each input as {stem}_{recipe}.png (--from: {stem}_rerun.png).
    """
    from sdenhance.cli.inpaint import _masked_input
    from sdenhance.cli.rerun_mask import rerun_mask
    from sdenhance.recipes import Recipe, load_recipe, parse_sets

    c.setup_logging(verbose)
    c.check_seed(seed)
    overrides: dict[str, Any] = {**(networks or {}), **parse_sets(sets or [])}
    specs = list(inputs or [])
    record: RunRecord | None = None
    mask_of = None
    if mask is not None and from_image is None:
        raise SdenhanceError("`--mask` goes with --from; recipes take no mask")
    if from_image is not None:
        if recipe is not None:
            specs.insert(0, recipe)
        record = record_of(from_image)
        the_recipe = Recipe.from_record(record, from_image)
        warn_changed(record, str(from_image))
        the_recipe.validate(overrides)  # the whole record is checked before any file is looked up
        specs = specs or [recorded_input(record, from_image)]
        mask_of = rerun_mask(record, from_image, mask)
        seed = seed if seed is not None else record.seed
        engine = dataclasses.replace(  # flags win over the recorded models
            engine,
            model=engine.model or record.model("model"),
            controlnet=engine.controlnet or record.model("controlnet"),
            inpaint_model=engine.inpaint_model or record.model("inpaint_model"),
            vae=engine.vae or record.model("vae"),
            dtype=recorded_dtype(record, engine.device) if engine.dtype == "auto" else engine.dtype,
        )
        op = "rerun"
    else:
        if recipe is None:
            raise SdenhanceError(
                "give a recipe and inputs (`sdenhance run RECIPE INPUT...`), or --from OUTPUT"
            )
        if not specs:
            raise SdenhanceError(
                f"no inputs: `sdenhance run {recipe} INPUT...` (files, folders or globs)"
            )
        the_recipe = load_recipe(recipe)
        op = the_recipe.name
    steps = the_recipe.validate(overrides)  # every step checked before any model loads
    if any(key.rsplit(".", 1)[-1] == "resemblance" for key in overrides):
        from sdenhance.stages.tile_upscale import refuse_resemblance

        refuse_resemblance(engine)
    offer = from_image is None and not no_input_prompt
    expected = record.input.sha256 if record is not None and record.input is not None else None

    def work(item, ctx):
        from sdenhance.api import join_alpha
        from sdenhance.io.load import load_image
        from sdenhance.recipes import run_recipe

        loaded = load_image(item.input, metadata=offer and "prompt" in the_recipe.variables())
        item_steps = steps
        prompt = (
            c.offered_prompt(loaded, enabled=offer) if "prompt" in the_recipe.variables() else None
        )
        if prompt:
            prompt = installed_only(prompt, Path(item.input).name)
            with_prompt = the_recipe.with_input_prompt(overrides, prompt)
            if with_prompt != overrides:
                item_steps = the_recipe.validate(with_prompt)
                ctx.record["prompt_source"] = loaded.metadata.source
        if writes_deep(loaded, item.output) and all(
            deep_capable(s.stage, s.options) for s in steps
        ):
            from sdenhance.stages.deep import run_deep

            out = run_deep([(s.stage, s.options) for s in item_steps], loaded.deep, ctx)
            ctx.record["recipe"] = the_recipe.name
            return out, {"recipe": the_recipe.name}
        if expected and input_record(item.input)["sha256"] != expected:
            log.warning(
                "%s differs from the input %s was made from; pixels will differ",
                item.input,
                from_image,
            )
        image = (
            _masked_input(item.input, mask_of, ctx)
            if mask_of is not None
            else join_alpha(loaded.image, loaded.alpha)
        )
        image = run_recipe(the_recipe, image, ctx=ctx, steps=item_steps)
        return image, {"recipe": the_recipe.name}

    def check(ctx, inputs):
        from sdenhance.stages import preflight

        for step in steps:
            preflight(step.stage, step.options, ctx)

    settings = {
        "recipe": the_recipe.name,
        "steps": [
            {"stage": s.stage, "options": recorded_options(get_stage(s.stage), s.options)}
            for s in steps
        ],
        "input_prompt": offer,
    }
    c.process_images(
        specs,
        output,
        op,
        work,
        overwrite=overwrite,
        engine=engine,
        seed=seed,
        saving=saving,
        settings=settings,
        check=check,
    )
