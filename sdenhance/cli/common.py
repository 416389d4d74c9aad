"""What every command shares: option types, presets, input prompts and the per-image work.

The consoles live in `console`, the model/device options in `engine_options`, the batch loop in
`images` and the options generated from a stage's `Options` in `stage_options`; they are
re-exported here so a command module needs one import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer

from sdenhance.cli.console import err_console, out_console, setup_logging
from sdenhance.cli.engine_options import engine_options
from sdenhance.cli.images import print_failures, process_images
from sdenhance.cli.panels import P_COLOUR, P_DIFF, P_MASK, P_OUT, P_PROMPT
from sdenhance.cli.stage_options import stage_options
from sdenhance.stages import Context

__all__ = [
    "P_COLOUR",
    "P_DIFF",
    "P_MASK",
    "P_OUT",
    "P_PROMPT",
    "engine_options",
    "err_console",
    "out_console",
    "print_failures",
    "process_images",
    "setup_logging",
    "stage_options",
]

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
Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Named preset (see `sdenhance presets`); flags override it.",
        rich_help_panel=P_PROMPT,
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

Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log details to stderr.", rich_help_panel=P_OUT)
]


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
    metadata) put before the options' prompt (a preset's quality words, say); its negative
    prompt likewise before the options' negative prompt, and its LoRAs added to `loras`.

    Pass `enabled=prompt is None and not no_input_prompt`: a prompt given on the command line,
    or `--no-input-prompt`, turns it all off. A LoRA or embedding the metadata names but that
    is not installed is a warning naming it (its `<lora:…>` tag is dropped), never a failure.
    Returns `opts` unchanged when there is nothing to offer.
    """
    prompt = offered_prompt(loaded, enabled=enabled)
    if prompt is None or not hasattr(opts, "prompt"):
        return opts
    from sdenhance.cli.networks import offered_networks
    from sdenhance.presets import join_prompts

    ctx.record["prompt_source"] = loaded.metadata.source
    changes = offered_networks(loaded, opts)
    changes["prompt"] = join_prompts(changes.get("prompt", prompt), opts.prompt)
    return item_options(opts, **changes)


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


# ---------------------------------------------------------------------------------------------
# the model and device options every generative command shares


def stage_work(
    stage: str,
    opts: Any,
    *,
    input_prompt: bool = False,
    roles: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    load: Callable[[Any, Context], Any] | None = None,
) -> Callable[[Any, Context], tuple[Any, dict[str, Any]]]:
    """The `work(item, ctx)` of `process_images` for one stage.

    Loads the input (alpha kept; or `load(path, ctx)` for inputs that need more, such as a
    mask), offers the prompt stored in its metadata when `input_prompt`, puts the `roles`
    images (reference, original) in the context and runs the stage.
    """
    from sdenhance.io.convert import join_alpha
    from sdenhance.io.load import load_image
    from sdenhance.stages import apply_stage

    def work(item: Any, ctx: Context) -> tuple[Any, dict[str, Any]]:
        ctx.images.update(roles or {})
        if load is not None:
            return apply_stage(stage, load(item.input, ctx), opts, ctx), dict(extra or {})
        loaded = load_image(item.input, metadata=input_prompt)  # unused metadata stays unread
        item_opts = use_input_prompt(loaded, opts, ctx, enabled=input_prompt)
        image = join_alpha(loaded.image, loaded.alpha)
        return apply_stage(stage, image, item_opts, ctx), dict(extra or {})

    return work
