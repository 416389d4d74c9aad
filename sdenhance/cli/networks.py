"""`--lora`, `--embedding` and `--clip-skip` for `run` (stage commands get them from the stage
options), and what an input's metadata names beyond its prompt: the negative prompt, LoRAs
and embeddings, where one that is not installed is a warning, never a failure."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer

from sdenhance.cli.panels import P_PROMPT
from sdenhance.stages.networks import clip_skip_option, embeddings_option, loras_option

Lora = Annotated[
    list[str] | None,
    typer.Option(
        "--lora",
        help=loras_option().metadata["help"] + " Sets `loras` of every step that has it.",
        rich_help_panel=P_PROMPT,
        show_default=False,
    ),
]
Embedding = Annotated[
    list[str] | None,
    typer.Option(
        "--embedding",
        help=embeddings_option().metadata["help"],
        rich_help_panel=P_PROMPT,
        show_default=False,
    ),
]
ClipSkip = Annotated[
    int | None,
    typer.Option("--clip-skip", help=clip_skip_option().metadata["help"], rich_help_panel=P_PROMPT),
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


def offered_networks(loaded: Any, opts: Any) -> dict[str, Any]:
    """Option changes from an input's metadata: its prompt without `<lora:…>` tags of LoRAs
    that are not installed, its negative prompt before the options' one, its installed LoRAs
    added to `loras`; each missing LoRA or embedding it names is warned about."""
    from sdenhance.models.library import find
    from sdenhance.models.loras import is_installed
    from sdenhance.presets import join_prompts

    metadata = loaded.metadata
    where = loaded.path.name
    changes: dict[str, Any] = {}
    if metadata.prompt:
        changes["prompt"] = installed_only(metadata.prompt, where)
    negative = metadata.negative_prompt
    if negative and hasattr(opts, "negative_prompt"):
        changes["negative_prompt"] = join_prompts(
            installed_only(negative, where), opts.negative_prompt
        )
    extra = []
    for name, weight in metadata.loras:
        if is_installed(name):
            extra.append(f"{name}:{weight:g}")
        else:
            warn_missing("LoRA", name, where)
    if extra and hasattr(opts, "loras"):
        changes["loras"] = tuple(dict.fromkeys([*opts.loras, *extra]))
    for name in metadata.embeddings:
        if find("embeddings", name) is None:
            warn_missing("embedding", name, where)
    return changes


def installed_only(text: str, where: str = "the input") -> str:
    """`text` without the `<lora:…>` tags of LoRAs that are not installed (each one warned)."""
    import re

    from sdenhance.models.loras import is_installed

    def keep(m: re.Match[str]) -> str:
        name = m.group(2).split(":")[0].strip()
        if name and is_installed(name):
            return m.group(0)
        warn_missing("LoRA", name, where)
        return ""

    return re.sub(r"<(lora|lyco):([^>]*)>", keep, text, flags=re.IGNORECASE)


def warn_missing(kind: str, name: str, where: str) -> None:
    logging.getLogger("sdenhance").warning(
        "%s names the %s `%s`, which is not installed; going on without it", where, kind, name
    )


def warn_changed(record: Any, source: str) -> None:
    """Warn when a LoRA or embedding a recorded run used is now a different file (same name,
    another hash): a rerun then gives other pixels."""
    from sdenhance.models.hashes import addnet_hash, sha256_file
    from sdenhance.models.library import find

    for kind, folder, digest in (
        ("LoRA", "loras", addnet_hash),
        ("embedding", "embeddings", sha256_file),
    ):
        for entry in getattr(record, folder, None) or []:
            path = find(folder, entry.name)
            if path is not None and entry.hash and digest(path)[:12] != entry.hash:
                logging.getLogger("sdenhance").warning(
                    "%s: the %s `%s` is another file now (hash %s, recorded %s); pixels will "
                    "differ",
                    source,
                    kind,
                    entry.name,
                    digest(path)[:12],
                    entry.hash,
                )
