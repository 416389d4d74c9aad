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
from sdenhance.cli.input_prompt import item_options, offered_prompt, use_input_prompt
from sdenhance.cli.panels import P_COLOUR, P_DIFF, P_MASK, P_OUT, P_PROMPT
from sdenhance.cli.stage_options import stage_options
from sdenhance.cli.stage_work import StageWork

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
    "StageWork",
    "item_options",
    "offered_prompt",
    "use_input_prompt",
]

Inputs = Annotated[
    list[str], typer.Argument(help="Image files, folders or globs.", show_default=False)
]
Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file (one input only), folder (created if missing: any name without an "
        "image suffix), or template with {stem} {op} {scale} {seed} {index}. Default: beside "
        "the input as {stem}_{op}.png.",
        rich_help_panel=P_OUT,
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace existing outputs (inputs are never overwritten); without it an output "
        "made with the same settings is skipped and one made otherwise is refused.",
        rich_help_panel=P_OUT,
    ),
]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Output format: png, jpg, webp, avif or tif. Default: the -o file's suffix, else png.",
        rich_help_panel=P_OUT,
        show_default=False,
    ),
]
Quality = Annotated[
    int | None,
    typer.Option(
        "--quality",
        help="JPEG, WebP and AVIF quality, 1–100 (WebP 100 is lossless). Default: 95, AVIF 90.",
        rich_help_panel=P_OUT,
        show_default=False,
    ),
]
StripMetadata = Annotated[
    bool,
    typer.Option(
        "--strip-metadata",
        help="Write no ICC profile, EXIF, XMP or run record (privacy); pixels in a colour "
        "profile other than sRGB are converted to sRGB first.",
        rich_help_panel=P_OUT,
    ),
]
ToSrgb = Annotated[
    bool,
    typer.Option(
        "--to-srgb",
        help="Convert the pixels from the input's ICC profile to sRGB. Default: keep the "
        "input's colour space and embed its profile.",
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


# ---------------------------------------------------------------------------------------------
# input prompts, rank devices and the failure table

NoInputPrompt = Annotated[
    bool,
    typer.Option(
        "--no-input-prompt",
        help="Ignore the prompt stored in an input's metadata (A1111, ComfyUI, Midjourney, "
        "sdenhance); by default it is used, before any preset words, when you give no prompt.",
        rich_help_panel=P_PROMPT,
    ),
]


# ---------------------------------------------------------------------------------------------
# the model and device options every generative command shares


def stage_work(stage: str, opts: Any, **kwargs: Any) -> StageWork:
    """The `work(item, ctx)` of `process_images` for one stage (see `StageWork`)."""
    return StageWork(stage, opts, **kwargs)


def warn_unused(stage: str, opts: Any, given: dict[str, Any]) -> None:
    """Say once, before any work, which options the user gave have no effect with `opts`."""
    from sdenhance.errors import option_text
    from sdenhance.stages import get_stage
    from sdenhance.stages.records import unused_options

    unused, why = unused_options(get_stage(stage), opts, given)
    if unused:
        names = ", ".join(option_text(name) for name in unused)
        logging.getLogger("sdenhance").warning("no effect: %s (%s)", names, why)


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command `--format`, `--quality`, `--strip-metadata` and `--to-srgb`; it takes a
    parameter `saving` and receives a checked `SaveOptions` there."""
    import functools
    import inspect

    extra = {
        "format": (Format, None),
        "quality": (Quality, None),
        "strip_metadata": (StripMetadata, False),
        "to_srgb": (ToSrgb, False),
    }
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "saving"]
    added = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=t, default=d)
        for n, (t, d) in extra.items()
    ]

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        from sdenhance.io.formats import SaveOptions

        values = {n: kwargs.pop(n) for n in extra}
        return fn(*args, saving=SaveOptions(**values), **kwargs)

    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind == p.POSITIONAL_OR_KEYWORD else p
        for p in own
    ]
    positional = [p for p in own if p.default is inspect.Parameter.empty]
    rest = [p for p in own if p.default is not inspect.Parameter.empty]
    command.__signature__ = sig.replace(parameters=positional + rest + added)  # type: ignore[attr-defined]
    return command
