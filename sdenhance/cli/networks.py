"""`--lora`, `--embedding` and `--clip-skip` for every generative command, and what an input's
metadata names but is not installed (a warning, never a failure)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer

P_PROMPT = "Prompt"

Lora = Annotated[
    list[str] | None,
    typer.Option(
        "--lora",
        help="LoRA as NAME_OR_PATH[:WEIGHT] (weight 1 if left out), repeatable. Names are file "
        "stems in SDENHANCE_LORA_DIR, the config's lora_dirs, or loras/ in the user folder; "
        "<lora:NAME:WEIGHT> in the prompt works too.",
        rich_help_panel=P_PROMPT,
        show_default=False,
    ),
]
Embedding = Annotated[
    list[str] | None,
    typer.Option(
        "--embedding",
        help="Textual-inversion embedding file or name, repeatable; use it by its name in the "
        "prompt. Embeddings in SDENHANCE_EMBEDDING_DIR, the config's embedding_dirs or "
        "embeddings/ in the user folder are found by name without this.",
        rich_help_panel=P_PROMPT,
        show_default=False,
    ),
]
ClipSkip = Annotated[
    int | None,
    typer.Option(
        "--clip-skip",
        help="Read the text encoder N layers from the end, 1–12, as A1111's Clip skip (2 for "
        "many anime SD 1.5 models). Default: the model's own.",
        rich_help_panel=P_PROMPT,
    ),
]


_NETWORK_OPTIONS: dict[str, tuple[Any, str]] = {
    "lora": (Lora, "loras"),
    "embedding": (Embedding, "embeddings"),
    "clip_skip": (ClipSkip, "clip_skip"),
}


def network_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command `--lora`, `--embedding` and `--clip-skip`; it takes a parameter
    `networks` and receives the stage option values given ({"loras": (...), ...}) there."""
    import functools
    import inspect

    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "networks"]
    extra = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=None)
        for n, (hint, _) in _NETWORK_OPTIONS.items()
    ]

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        given = {}
        for name, (_, option) in _NETWORK_OPTIONS.items():
            value = kwargs.pop(name)
            if value:  # an empty list is "not given"; clip skip is never 0
                given[option] = tuple(value) if isinstance(value, list) else value
        return fn(*args, networks=given, **kwargs)

    command.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
    return command


def installed_only(text: str) -> str:
    """`text` without the `<lora:…>` tags of LoRAs that are not installed (each one warned)."""
    import re

    from sdenhance.models.loras import is_installed

    def keep(m: re.Match[str]) -> str:
        name = m.group(2).split(":")[0].strip()
        if name and is_installed(name):
            return m.group(0)
        warn_missing("LoRA", name, "the input")
        return ""

    return re.sub(r"<(lora|lyco):([^>]*)>", keep, text, flags=re.IGNORECASE)


def warn_missing(kind: str, name: str, where: str) -> None:
    logging.getLogger("sdenhance").warning(
        "%s names the %s `%s`, which is not installed; going on without it", where, kind, name
    )
