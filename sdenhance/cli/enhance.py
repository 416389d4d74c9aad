"""`sdenhance enhance` (diagnose each image, show the plan, run it) and `sdenhance deblur`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from sdenhance.cli import common as c
from sdenhance.errors import SdenhanceError
from sdenhance.models.config import EngineConfig

app = typer.Typer()

P_PLAN = "Plan"


@app.command("enhance")
@c.engine_options("model", "controlnet")
def enhance(
    inputs: c.Inputs,
    target: Annotated[
        int,
        typer.Option(
            "--target",
            help="Long side of the output in px, 16–65536 (smaller images are enlarged to "
            "it, larger ones keep their size).",
            rich_help_panel=P_PLAN,
        ),
    ] = 2048,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Plan only offline stages (denoise, deblur, Real-ESRGAN, colour), even if "
            "a diffusion model is installed.",
            rich_help_panel=P_PLAN,
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show the diagnosis and the plan, then stop (nothing loads, nothing is written).",
            rich_help_panel=P_PLAN,
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"diagnosis": {"findings": [...]}, "plan": [...]} on stdout (a list '
            "of them for several inputs).",
            rich_help_panel=c.P_OUT,
        ),
    ] = False,
    save_recipe: Annotated[
        Path | None,
        typer.Option(
            "--save-recipe",
            help="Write the plan as a recipe TOML file (for `sdenhance run`); with several "
            "inputs use {stem} in the name.",
            rich_help_panel=c.P_OUT,
            show_default=False,
        ),
    ] = None,
    seed: c.Seed = None,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
) -> None:
    """Diagnose each image, show the findings and the plan (as a recipe), then run it.

    Offline stages only with --offline or when no diffusion model is on this machine.
    Outputs ({stem}_enhance.png) record the diagnosis and steps for `sdenhance run --from`.
    """
    from sdenhance.batch import expand_inputs
    from sdenhance.enhance.run import make_plan

    c.setup_logging(verbose)
    c.check_seed(seed)
    if not 16 <= target <= 65536:
        raise SdenhanceError(f"`--target` must be from 16 to 65536 px; got {target}")
    paths = expand_inputs(inputs)
    _check_recipe_path(save_recipe, paths, overwrite)

    # 1. Diagnose and plan every input before anything loads
    plans: dict[Path, Any] = {}
    failed: dict[Path, str] = {}
    for path in paths:
        try:
            loaded = _load(path)
            plans[path] = make_plan(
                loaded.image,
                target=target,
                offline=offline,
                engine_config=engine,
                metadata=loaded.metadata,
            )
        except SdenhanceError as exc:
            if len(paths) == 1:
                raise
            failed[path] = str(exc)
            c.err_console.print(
                f"[bold red]error:[/] {path}: {exc}", highlight=False, soft_wrap=True
            )
            continue
        _show(path, plans[path])
        if save_recipe is not None:
            _write_recipe(save_recipe, path, plans[path])
    if as_json:
        docs = [{"input": str(p), **plan.to_dict()} for p, plan in plans.items()]
        c.out_console.print(
            json.dumps(docs[0] if len(paths) == 1 else docs, ensure_ascii=False),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if dry_run:
        if failed:
            raise typer.Exit(3 if plans else 2)
        return

    # 2. Run each plan (models load once, on the first step that needs them)
    def work(item, ctx):
        from sdenhance.enhance.run import run_plan
        from sdenhance.io.convert import join_alpha

        if item.input in failed:
            raise SdenhanceError(failed[item.input])
        loaded = _load(item.input)
        image = run_plan(join_alpha(loaded.image, loaded.alpha), plans[item.input], ctx)
        return image, {"recipe": "enhance"}

    c.process_images(
        [str(p) for p in paths],
        output,
        "enhance",
        work,
        overwrite=overwrite,
        engine=engine,
        seed=seed,
    )


@app.command("deblur")
@c.stage_options("deblur")
def deblur(
    inputs: c.Inputs,
    output: c.Output = None,
    overwrite: c.Overwrite = False,
    verbose: c.Verbose = False,
    values: dict[str, Any] | None = None,
) -> None:
    """Undo defocus or motion blur offline (Wiener, PSF read from the image unless given)."""
    from sdenhance.stages import build_options

    c.setup_logging(verbose)
    opts = build_options("deblur", values or {})
    c.process_images(inputs, output, "deblur", c.stage_work("deblur", opts), overwrite=overwrite)


def _load(path: Path):
    from sdenhance.io.load import load_image

    return load_image(path)


def _show(path: Path, plan: Any) -> None:
    """The diagnosis table and the plan's TOML, on stderr."""
    from rich.table import Table

    from sdenhance.enhance.plan import recipe_toml

    d = plan.diagnosis
    table = Table(
        title=f"{path}: {d.size[0]}×{d.size[1]}, diagnosed in {d.seconds:.2f} s",
        title_justify="left",
    )
    for name in ("finding", "value", "threshold", "verdict"):
        table.add_column(name, overflow="fold")
    for f in d.findings:
        value = "–" if f.value is None else f"{f.value:.3g}"
        sign = "≥" if f.above else "≤"
        verdict = (
            "not measured"
            if f.value is None
            else f"{'yes' if f.present else 'no'} ({f.confidence:.0%})"
        )
        table.add_row(f.name, f"{value} {f.unit}".strip(), f"{sign} {f.threshold:g}", verdict)
    c.err_console.print(table)
    mode = plan.mode + (f" ({plan.reason})" if plan.reason else "")
    c.err_console.print(f"plan, {mode}:", highlight=False, markup=False, soft_wrap=True)
    c.err_console.print(recipe_toml(plan.recipe), highlight=False, markup=False, soft_wrap=True)


def _check_recipe_path(template: Path | None, paths: list[Path], overwrite: bool) -> None:
    if template is None:
        return
    if len(paths) > 1 and "{stem}" not in str(template):
        raise SdenhanceError(
            "`--save-recipe` with several inputs needs {stem} in the file name, e.g. {stem}.toml"
        )
    if template.suffix.lower() != ".toml":
        raise SdenhanceError(f"`--save-recipe` must name a .toml file; got {template}")
    for path in paths:
        target = Path(str(template).replace("{stem}", path.stem))
        if target.exists() and (target.resolve() == path.resolve() or not overwrite):
            raise SdenhanceError(
                f"`--save-recipe`: {target} exists (use --overwrite to replace it)"
            )


def _write_recipe(template: Path, path: Path, plan: Any) -> None:
    """The plan as a recipe file, written atomically."""
    import dataclasses

    from sdenhance.enhance.plan import recipe_toml

    target = Path(str(template).replace("{stem}", path.stem))
    recipe = dataclasses.replace(plan.recipe, name=target.stem)  # a recipe's name is its stem
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(recipe_toml(recipe))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    c.err_console.print(f"recipe written to {target}", highlight=False, markup=False)
