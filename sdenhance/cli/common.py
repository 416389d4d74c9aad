"""What every command shares: consoles, option types, engine options and the batch loop."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..batch import BatchItem, expand_inputs, plan, run_batch
from ..engine import EngineConfig
from ..stages import Context

out_console = Console(highlight=False, soft_wrap=True)  # results: paths, JSON
err_console = Console(stderr=True, highlight=False)  # progress and messages

P_PROMPT, P_DIFF, P_TILE, P_COLOUR = "Prompt", "Diffusion", "Tiling", "Colour"
P_OUT, P_MODEL, P_PERF, P_MASK = "Output", "Model", "Performance", "Mask"

Inputs = Annotated[list[str], typer.Argument(help="Image files, folders or globs.", show_default=False)]
Output = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Output file, folder, or template with {stem} {op} {scale} {seed} {index}. Default: beside the input as {stem}_{op}.png.", rich_help_panel=P_OUT),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs (inputs are never overwritten).", rich_help_panel=P_OUT)]
Prompt = Annotated[str | None, typer.Option("--prompt", "-p", help="What the image shows; guides the new detail.", rich_help_panel=P_PROMPT)]
NegativePrompt = Annotated[str | None, typer.Option("--negative-prompt", "-n", help="What to steer away from (blur, artefacts...).", rich_help_panel=P_PROMPT)]
Preset = Annotated[str | None, typer.Option("--preset", help="Named preset (see `sdenhance presets`); flags override it.", rich_help_panel=P_PROMPT)]
Steps = Annotated[int | None, typer.Option("--steps", help="Sampler steps of the full schedule, ≥ 1 (only strength×steps run).", rich_help_panel=P_DIFF)]
Guidance = Annotated[float | None, typer.Option("--guidance", help="Classifier-free guidance scale, ≥ 0 (1 disables it; 4–8 typical).", rich_help_panel=P_DIFF)]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed in [0, 2^32); same seed, same output. Default: random, recorded in the output.", rich_help_panel=P_DIFF)]
Scheduler = Annotated[str | None, typer.Option("--scheduler", help="Sampler: dpmpp-2m-karras, dpmpp-2m, euler, euler-a, ddim, unipc, lms, heun, pndm.", rich_help_panel=P_DIFF)]

Model = Annotated[str | None, typer.Option("--model", "-m", envvar="SDENHANCE_MODEL", help="Base model: hub id, diffusers folder or single .safetensors file (SD 1.5 or SDXL).", rich_help_panel=P_MODEL)]
ControlNet = Annotated[str | None, typer.Option("--controlnet", envvar="SDENHANCE_CONTROLNET", help="Tile ControlNet: hub id, folder or .safetensors. Default: the family's tile model.", rich_help_panel=P_MODEL)]
InpaintModel = Annotated[str | None, typer.Option("--inpaint-model", envvar="SDENHANCE_INPAINT_MODEL", help="Dedicated inpainting model (9-channel UNet); default: inpaint with the base model.", rich_help_panel=P_MODEL)]
ModelConfig = Annotated[str | None, typer.Option("--model-config", help="Diffusers folder or hub id holding configs for single-file checkpoints (offline use).", rich_help_panel=P_MODEL)]
AllowPickle = Annotated[bool, typer.Option("--allow-pickle", help="Allow .ckpt/.pt/.pth/.bin pickles (loaded weights-only). Off: pickles are refused.", rich_help_panel=P_MODEL)]
Device = Annotated[str, typer.Option("--device", help="auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps.", rich_help_panel=P_PERF)]
Dtype = Annotated[str, typer.Option("--dtype", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16.", rich_help_panel=P_PERF)]
Offload = Annotated[str, typer.Option("--offload", help="Move idle models off the GPU: none, model or sequential (slowest, least memory).", rich_help_panel=P_PERF)]
VaeTiling = Annotated[bool, typer.Option("--vae-tiling", help="Decode/encode the VAE in tiles (less memory for huge single-pass images).", rich_help_panel=P_PERF)]
AttentionSlicing = Annotated[bool, typer.Option("--attention-slicing", help="Compute attention in slices (less memory, slower).", rich_help_panel=P_PERF)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.", rich_help_panel=P_OUT)]


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
    from ..engine import check_config

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
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=err_console, show_path=False, show_time=False))
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
    """The loop every image command runs: expand, name, skip existing, run, save, summarise.

    `work(item, ctx)` returns (PIL image, extra metadata). Models load once and are shared by
    all items. Exit: 0 all done, 2 bad single input, 3 some items failed, 130 interrupted.
    """
    from ..image import save_image

    paths = expand_inputs(inputs)
    items = plan(paths, output, op, fields={"seed": seed if seed is not None else "rand", **(fields or {})})
    shared: dict[str, Any] = {"engine": None}
    show = err_console.is_terminal and not err_console.is_dumb_terminal

    with Progress(
        TextColumn("[bold]{task.description}"),
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
            record = {**ctx.record, **extra}
            save_image(image, item.output, metadata=record, protect=paths)
            out_console.print(str(item.output))

        def on_item(n: int, total: int, item: BatchItem) -> None:
            bar.update(batch_task, completed=n)
            if not show and total > 1:
                err_console.print(f"[{n + 1}/{total}] {item.input}")

        summary = run_batch(items, one, overwrite=overwrite, on_item=on_item)
        bar.update(batch_task, completed=len(items))

    for item in summary.skipped:
        err_console.print(f"skipped {item.input}: {item.output} exists (use --overwrite)")
    if summary.failed:
        err_console.print(f"[bold red]{len(summary.failed)} of {len(items)} failed:[/]")
        for item, message in summary.failed:
            err_console.print(f"  {item.input}: {message}", soft_wrap=True)
    if len(items) > 1:
        err_console.print(
            f"done {len(summary.done)}, skipped {len(summary.skipped)}, failed {len(summary.failed)}"
        )
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


def stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def check_seed(seed: int | None) -> None:
    from ..errors import SdenhanceError

    if seed is not None and not 0 <= seed < 2**32:
        raise SdenhanceError(f"`--seed` must be in [0, 2^32); got {seed}")


def with_preset(name: str | None, values: dict[str, Any]) -> dict[str, Any]:
    """Preset defaults under the flags the user gave (flags win)."""
    if not name:
        return values
    from ..presets import load_preset

    return {**load_preset(name).defaults(), **values}


def use_input_prompt(loaded: Any, opts: Any, ctx: Context) -> None:
    """Placeholder until input metadata prompts are offered as defaults (see presets/recipes)."""
    return None
