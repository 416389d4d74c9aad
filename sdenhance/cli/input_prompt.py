"""The prompt stored in an input's metadata, offered as the prompt when none is given."""

from __future__ import annotations

import logging
from typing import Any

from sdenhance.stages import Context


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


def offered_prompt(loaded: Any, *, enabled: bool = True) -> str | None:
    """The prompt in a loaded input's generation metadata, or None (none there, or disabled)."""
    if not enabled:
        return None
    metadata = getattr(loaded, "metadata", None)
    prompt = metadata.prompt if metadata is not None else None
    if not prompt:
        return None
    logging.getLogger("sdenhance").info(
        "%s: using the prompt from its %s metadata (give a prompt, or --no-input-prompt, to change "
        "that)",
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
