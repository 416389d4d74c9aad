"""The loop of every image command: expand inputs, name outputs, shard, skip, run, save."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sdenhance.batch import BatchItem, expand_inputs, plan, run_batch
from sdenhance.cli.console import err_console, out_console
from sdenhance.cli.engine_options import rank_device
from sdenhance.io.digest import input_record
from sdenhance.io.formats import SaveOptions
from sdenhance.models.config import EngineConfig
from sdenhance.stages import Context


def process_images(
    inputs: list[str],
    output: str | None,
    op: str,
    work: Callable[[BatchItem, Context], tuple[Any, dict[str, Any]]],
    *,
    overwrite: bool = False,
    engine: EngineConfig | None = None,
    seed: int | None = None,
    fields: dict[str, Any] | None = None,
    saving: SaveOptions | None = None,
    settings: dict[str, Any] | None = None,
    check: Callable[[Context, list[Path]], None] | None = None,
) -> None:
    """The loop every image command runs: expand, name, shard, skip existing, run, save, summarise.

    `work(item, ctx)` returns (PIL image or DeepImage, extra metadata). Models load once and
    are shared by all items. `check(ctx, inputs)` runs once before any item (when any is to
    run): what it refuses is wrong for every input, so the run stops there (exit 2) instead of
    every item failing on its own (exit 3). Under `accelerate launch` (or RANK/WORLD_SIZE) each
    process takes its share of the inputs; output names are decided over all inputs first, so
    they never depend on the number of processes. Seeds are drawn per item before naming.
    `settings` (default: `work.settings`) with the engine, seed and `saving` make the
    fingerprint each output records; an existing output made otherwise is refused, not skipped.
    Exit: 0 all done, 2 bad single input, 3 some failed, 130 interrupted.
    """
    from sdenhance.batch import rank_and_world, shard
    from sdenhance.batch_naming import check_existing, item_seeds
    from sdenhance.io.save import save_image

    saving = saving or SaveOptions()
    paths = expand_inputs(inputs)
    items = plan(
        paths,
        output,
        op,
        fields=fields,
        suffix=saving.suffix,
        seeds=item_seeds(len(paths), seed),
    )
    check_formats(items, saving)
    stamp = run_fingerprint(op, settings or getattr(work, "settings", None), engine, seed, saving)
    rank, world = rank_and_world()
    if world > 1:
        items = shard(items, rank, world)
        engine = rank_device(engine)
        logging.getLogger("sdenhance").info(
            "process %d of %d: %d input(s)", rank + 1, world, len(items)
        )
    shared: dict[str, Any] = {"engine": None}
    if check is not None and any(overwrite or not item.output.exists() for item in items):
        ctx = Context(engine_config=engine, seed=seed)
        check(ctx, [item.input for item in items])
        shared["engine"] = ctx._engine
    finished: list[BatchItem] = []
    show = err_console.is_terminal and not err_console.is_dumb_terminal

    def existing(item: BatchItem) -> None:
        check_existing(item.output, stamp, input_record(item.input)["sha256"])

    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not show,
        transient=True,
    ) as bar:
        batch_task = bar.add_task("images", total=len(items), visible=len(items) > 1)
        step_task = bar.add_task(op, total=1)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(step_task, description=label, completed=done, total=max(total, 1))

        def one(item: BatchItem) -> None:
            ctx = Context(engine_config=engine, seed=item.seed, progress=progress)
            ctx._engine = shared["engine"]
            try:
                image, extra = work(item, ctx)
            finally:
                shared["engine"] = ctx._engine
            record = {
                **ctx.record,
                "input": input_record(item.input),
                "fingerprint": stamp,
                **extra,
            }
            save_image(
                image,
                item.output,
                metadata=record,
                protect=paths,
                quality=saving.quality,
                strip_metadata=saving.strip_metadata,
                to_srgb=saving.to_srgb,
            )
            finished.append(item)
            out_console.print(str(item.output))

        def on_item(n: int, total: int, item: BatchItem) -> None:
            bar.update(batch_task, completed=n)
            bar.reset(step_task, description=op, total=1)
            if not show and total > 1:
                err_console.print(f"[{n + 1}/{total}] {item.input}")

        try:
            summary = run_batch(items, one, overwrite=overwrite, on_item=on_item, existing=existing)
        except KeyboardInterrupt:
            bar.stop()
            err_console.print(
                f"interrupted: {len(finished)} of {len(items)} written; no partial file is left, "
                "and the same command resumes (finished outputs are skipped)"
            )
            raise
        bar.update(batch_task, completed=len(items))

    for item in summary.skipped:
        err_console.print(f"skipped {item.input}: {item.output} exists (use --overwrite)")
    if summary.failed:
        print_failures(summary.failed, len(items))
    if len(items) > 1:
        err_console.print(
            f"done {len(summary.done)}, skipped {len(summary.skipped)}, failed "
            f"{len(summary.failed)}"
        )
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def check_formats(items: list[BatchItem], saving: SaveOptions) -> None:
    """Before any work: `--format` agrees with every output's suffix, and `--quality` is not
    given for lossless outputs only (it would do nothing there: said once)."""
    from sdenhance.io.formats import LOSSY, check_suffix_matches, format_of

    formats = set()
    for item in items:
        check_suffix_matches(item.output, saving.format)
        formats.add(format_of(item.output))
    if saving.quality is not None and items and not formats & LOSSY:
        logging.getLogger("sdenhance").warning(
            "--quality has no effect on %s outputs (lossless)", "/".join(sorted(formats))
        )


def run_fingerprint(
    op: str,
    settings: dict[str, Any] | None,
    engine: EngineConfig | None,
    seed: int | None,
    saving: SaveOptions,
) -> str:
    """The fingerprint of what decides the outputs: the command's settings, the models and
    precision, a given seed (a random one differs every run by design) and how files are written."""
    import dataclasses

    from sdenhance.batch_naming import fingerprint

    models = {}
    if engine is not None:
        skip = {"device", "offload", "vae_tiling", "attention_slicing"}
        models = {k: v for k, v in dataclasses.asdict(engine).items() if k not in skip}
    return fingerprint(
        {"op": op, "settings": settings, "engine": models, "seed": seed, **saving.settings()}
    )


def print_failures(failed: list[tuple[BatchItem, str]], total: int) -> None:
    """The failed items as a table on stderr."""
    from rich.table import Table

    table = Table(
        title=f"{len(failed)} of {total} failed", title_style="bold red", title_justify="left"
    )
    table.add_column("input", overflow="fold")
    table.add_column("error", overflow="fold")
    for item, message in failed:
        table.add_row(str(item.input), message)
    # wide enough on a log or pipe that no path or message is folded across lines
    err_console.print(table, width=None if err_console.is_terminal else 1000)
