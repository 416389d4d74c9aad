"""What every command shares: consoles, option types, engine options and the batch loop."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sdenhance.batch import BatchItem, expand_inputs, plan, run_batch
from sdenhance.cli.terminal import SafeConsole, SafeRichHandler
from sdenhance.models.config import EngineConfig
from sdenhance.stages import Context

# literal text (no markup), control characters escaped: see cli/terminal.py
out_console = SafeConsole(soft_wrap=True)  # results: paths, JSON
err_console = SafeConsole(stderr=True)  # progress and messages

P_PROMPT, P_DIFF, P_TILE, P_COLOUR = "Prompt", "Diffusion", "Tiling", "Colour"
P_OUT, P_MODEL, P_PERF, P_MASK = "Output", "Model", "Performance", "Mask"

Inputs = Annotated[
    list[str], typer.Argument(help="Image files, folders or globs.", show_default=False)
]
Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file, folder, or template with {stem} {op} {scale} {seed} {index}. Default: beside the input as {stem}_{op}.png.",
        rich_help_panel=P_OUT,
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace existing outputs (inputs are never overwritten).",
        rich_help_panel=P_OUT,
    ),
]
Prompt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        "-p",
        help="What the image shows; guides the new detail.",
        rich_help_panel=P_PROMPT,
    ),
]
NegativePrompt = Annotated[
    str | None,
    typer.Option(
        "--negative-prompt",
        "-n",
        help="What to steer away from (blur, artefacts...).",
        rich_help_panel=P_PROMPT,
    ),
]
Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Named preset (see `sdenhance presets`); flags override it.",
        rich_help_panel=P_PROMPT,
    ),
]
Steps = Annotated[
    int | None,
    typer.Option(
        "--steps",
        help="Sampler steps of the full schedule, ≥ 1 (only strength×steps run).",
        rich_help_panel=P_DIFF,
    ),
]
Guidance = Annotated[
    float | None,
    typer.Option(
        "--guidance",
        help="Classifier-free guidance scale, ≥ 0 (1 disables it; 4–8 typical).",
        rich_help_panel=P_DIFF,
    ),
]
Seed = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Seed in [0, 2^32); same seed, same output. Default: random, recorded in the output.",
        rich_help_panel=P_DIFF,
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Sampler: dpmpp-2m-karras, dpmpp-2m, euler, euler-a, ddim, unipc, lms, heun, pndm.",
        rich_help_panel=P_DIFF,
    ),
]

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="SDENHANCE_MODEL",
        help="Base model: hub id, diffusers folder or single .safetensors file (SD 1.5 or SDXL).",
        rich_help_panel=P_MODEL,
    ),
]
ControlNet = Annotated[
    str | None,
    typer.Option(
        "--controlnet",
        envvar="SDENHANCE_CONTROLNET",
        help="Tile ControlNet: hub id, folder or .safetensors. Default: the family's tile model.",
        rich_help_panel=P_MODEL,
    ),
]
InpaintModel = Annotated[
    str | None,
    typer.Option(
        "--inpaint-model",
        envvar="SDENHANCE_INPAINT_MODEL",
        help="Dedicated inpainting model (9-channel UNet); default: inpaint with the base model.",
        rich_help_panel=P_MODEL,
    ),
]
ModelConfig = Annotated[
    str | None,
    typer.Option(
        "--model-config",
        help="Diffusers folder or hub id holding configs for single-file checkpoints (offline use).",
        rich_help_panel=P_MODEL,
    ),
]
AllowPickle = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="Allow .ckpt/.pt/.pth/.bin pickles (loaded weights-only). Off: pickles are refused.",
        rich_help_panel=P_MODEL,
    ),
]
Device = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.",
        rich_help_panel=P_PERF,
    ),
]
Dtype = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16.",
        rich_help_panel=P_PERF,
    ),
]
Offload = Annotated[
    str,
    typer.Option(
        "--offload",
        help="Move idle models off the GPU: none, model or sequential (slowest, least memory).",
        rich_help_panel=P_PERF,
    ),
]
VaeTiling = Annotated[
    bool,
    typer.Option(
        "--vae-tiling",
        help="Decode/encode the VAE in tiles (less memory for huge single-pass images).",
        rich_help_panel=P_PERF,
    ),
]
AttentionSlicing = Annotated[
    bool,
    typer.Option(
        "--attention-slicing",
        help="Compute attention in slices (less memory, slower).",
        rich_help_panel=P_PERF,
    ),
]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log details to stderr.", rich_help_panel=P_OUT)
]


def engine_config(
    model: str | None = None,
    controlnet: str | None = None,
    inpaint_model: str | None = None,
    model_config: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    offload: str = "none",
    vae_tiling: bool = False,
    attention_slicing: bool = False,
    allow_pickle: bool = False,
) -> EngineConfig:
    from sdenhance.models.config import check_config, user_defaults

    user_defaults()  # a broken config file is reported before any work, not at the first load
    cfg = EngineConfig(
        model=model,
        controlnet=controlnet,
        inpaint_model=inpaint_model,
        model_config=model_config,
        device=device,
        dtype=dtype,
        offload=offload,
        vae_tiling=vae_tiling,
        attention_slicing=attention_slicing,
        allow_pickle=allow_pickle,
    )
    check_config(cfg)
    return cfg


def setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("sdenhance")
    if not any(isinstance(h, SafeRichHandler) for h in logger.handlers):
        logger.addHandler(SafeRichHandler(console=err_console, show_path=False, show_time=False))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def drop_none(**values: Any) -> dict[str, Any]:
    """Flags the user gave (None = not given, so stage or preset defaults apply)."""
    return {k: v for k, v in values.items() if v is not None}


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
) -> None:
    """The loop every image command runs: expand, name, shard, skip existing, run, save, summarise.

    `work(item, ctx)` returns (PIL image, extra metadata). Models load once and are shared by
    all items. Under `accelerate launch` (or RANK/WORLD_SIZE) each process takes its share of
    the inputs; output names are decided over all inputs first, so they never depend on the
    number of processes. Exit: 0 all done, 2 bad single input, 3 some failed, 130 interrupted.
    """
    from sdenhance.batch import rank_and_world, shard
    from sdenhance.io.save import save_image

    paths = expand_inputs(inputs)
    items = plan(
        paths, output, op, fields={"seed": seed if seed is not None else "rand", **(fields or {})}
    )
    rank, world = rank_and_world()
    if world > 1:
        items = shard(items, rank, world)
        engine = _rank_device(engine)
        logging.getLogger("sdenhance").info(
            "process %d of %d: %d input(s)", rank + 1, world, len(items)
        )
    shared: dict[str, Any] = {"engine": None}
    finished: list[BatchItem] = []
    show = err_console.is_terminal and not err_console.is_dumb_terminal

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
            ctx = Context(engine_config=engine, seed=seed, progress=progress)
            ctx._engine = shared["engine"]
            try:
                image, extra = work(item, ctx)
            finally:
                shared["engine"] = ctx._engine
            record = {**ctx.record, "input": input_record(item.input), **extra}
            save_image(image, item.output, metadata=record, protect=paths)
            finished.append(item)
            out_console.print(str(item.output))

        def on_item(n: int, total: int, item: BatchItem) -> None:
            bar.update(batch_task, completed=n)
            bar.reset(step_task, description=op, total=1)
            if not show and total > 1:
                err_console.print(f"[{n + 1}/{total}] {item.input}")

        try:
            summary = run_batch(items, one, overwrite=overwrite, on_item=on_item)
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
            f"done {len(summary.done)}, skipped {len(summary.skipped)}, failed {len(summary.failed)}"
        )
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def check_seed(seed: int | None) -> None:
    from sdenhance.errors import SdenhanceError

    if seed is not None and not 0 <= seed < 2**32:
        raise SdenhanceError(f"`--seed` must be in [0, 2^32); got {seed}")


def with_preset(name: str | None, values: dict[str, Any], stage: str = "upscale") -> dict[str, Any]:
    """The preset's defaults for `stage` under the flags the user gave (flags win)."""
    if not name:
        return values
    from sdenhance.presets import load_preset

    return {**load_preset(name).defaults(stage), **values}


def use_input_prompt(loaded: Any, opts: Any, ctx: Context, *, enabled: bool = True) -> Any:
    """Per-item options with the input's own prompt (A1111, ComfyUI, Midjourney or sdenhance
    metadata) put before the options' prompt (a preset's quality words, say).

    Pass `enabled=prompt is None and not no_input_prompt`: a prompt given on the command line,
    or `--no-input-prompt`, turns it off. Returns `opts` unchanged when there is nothing to offer.
    """
    prompt = offered_prompt(loaded, enabled=enabled)
    if prompt is None or not hasattr(opts, "prompt"):
        return opts
    from sdenhance.presets import join_prompts

    ctx.record["prompt_source"] = loaded.metadata.source
    return item_options(opts, prompt=join_prompts(prompt, opts.prompt))


# ---------------------------------------------------------------------------------------------
# input prompts, rank devices and the failure table

NoInputPrompt = Annotated[
    bool,
    typer.Option(
        "--no-input-prompt",
        help="Ignore the prompt stored in an input's metadata (A1111, ComfyUI, Midjourney, sdenhance); by default it is used, before any preset words, when you give no prompt.",
        rich_help_panel=P_PROMPT,
    ),
]


def offered_prompt(loaded: Any, *, enabled: bool = True) -> str | None:
    """The prompt in a loaded input's generation metadata, or None (none there, or disabled)."""
    if not enabled:
        return None
    metadata = getattr(loaded, "metadata", None)
    prompt = metadata.prompt if metadata is not None else None
    if not prompt:
        return None
    logging.getLogger("sdenhance").info(
        "%s: using the prompt from its %s metadata (give a prompt, or --no-input-prompt, to change that)",
        loaded.path.name,
        metadata.source,
    )
    return prompt


def item_options(opts: Any, **changes: Any) -> Any:
    """A copy of a frozen options dataclass with `changes` (only fields it has), re-validated."""
    import dataclasses

    from sdenhance.options import validate

    names = {f.name for f in dataclasses.fields(opts)}
    kept = {k: v for k, v in changes.items() if k in names}
    if not kept:
        return opts
    new = dataclasses.replace(opts, **kept)
    validate(new)
    return new


def input_record(path: Any) -> dict[str, Any]:
    """Name and SHA-256 (first 16 hex digits) of an input, for the output's run record."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"name": Path(path).name, "sha256": digest.hexdigest()[:16]}


def print_failures(failed: list[tuple[BatchItem, str]], total: int) -> None:
    """The failed items as a table on stderr."""
    from rich.table import Table

    table = Table(
        title=f"{len(failed)} of {total} failed", title_style="bold red", title_justify="left"
    )
    table.add_column("input", overflow="fold")
    table.add_column("error", overflow="fold")
    for item, message in failed:  # the console prints both literally, control codes escaped
        table.add_row(str(item.input), message)
    # wide enough on a log or pipe that no path or message is folded across lines
    err_console.print(table, width=None if err_console.is_terminal else 1000)


def _rank_device(engine: EngineConfig | None) -> EngineConfig | None:
    """One GPU per process under a multi-process launch: `auto`/`cuda` -> `cuda:LOCAL_RANK`."""
    import dataclasses
    import os

    if engine is None or engine.device not in ("auto", "cuda"):
        return engine
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 1:
        return engine
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return dataclasses.replace(engine, device=f"cuda:{local % count}")


# ---------------------------------------------------------------------------------------------
# the model and device options every generative command shares

_ENGINE_OPTIONS: dict[str, tuple[Any, Any]] = {
    "model": (Model, None),
    "controlnet": (ControlNet, None),
    "inpaint_model": (InpaintModel, None),
    "model_config": (ModelConfig, None),
    "allow_pickle": (AllowPickle, False),
    "device": (Device, "auto"),
    "dtype": (Dtype, "auto"),
    "offload": (Offload, "none"),
    "vae_tiling": (VaeTiling, False),
    "attention_slicing": (AttentionSlicing, False),
}
_MODEL_ROLES = ("model", "controlnet", "inpaint_model")


def engine_options(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared model, device and speed options, declared once here.

    `roles` picks the models it offers (model, controlnet, inpaint_model); the command takes a
    parameter `engine` and receives a checked `EngineConfig` there.
    """
    import functools
    import inspect

    names = [n for n in _ENGINE_OPTIONS if n not in _MODEL_ROLES or n in roles]

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "engine"]
        extra = [
            inspect.Parameter(
                n,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_ENGINE_OPTIONS[n][0],
                default=_ENGINE_OPTIONS[n][1],
            )
            for n in names
        ]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in names}
            return fn(*args, engine=engine_config(**values), **kwargs)

        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            if p.kind == p.POSITIONAL_OR_KEYWORD
            else p
            for p in own
        ]
        command.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        return command

    return wrap
