"""Option fields every generative stage shares: LoRAs, textual-inversion embeddings, clip skip.

Declared once here (`NetworkOptions`, the base of those stages' `Options`) so their help and
checks read the same in every stage, preset and recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.options import option

MAX_LORAS = 16
MAX_EMBEDDINGS = 32


def loras_option() -> Any:
    return option(
        (),
        "LoRAs, each NAME_OR_PATH[:WEIGHT] (on the command line: repeat --lora; weight 1 if "
        "left out, 0 disables one), applied for this step only. Names are file stems in the LoRA "
        "folders (SDENHANCE_LORA_DIR, the "
        "config's lora_dirs, then loras/ in the user folder); <lora:NAME:WEIGHT> in the "
        "prompt adds one too.",
    )


def embeddings_option() -> Any:
    return option(
        (),
        "Textual-inversion embeddings (file path or name; repeat --embedding) to load; use each "
        "by its name in the "
        "prompt or negative prompt. Names from the embedding folders (SDENHANCE_EMBEDDING_DIR, "
        "the config's embedding_dirs, then embeddings/ in the user folder) work without this.",
    )


def clip_skip_option() -> Any:
    return option(
        None,
        "Read the text encoder N layers from the end, as A1111's Clip skip (2 suits many "
        "anime SD 1.5 models). Default: the model's own (last layer for SD 1.5, penultimate "
        "for SDXL).",
        ge=1,
        le=12,
    )


def check_networks(opts: Any) -> None:
    """Entries of `loras` and `embeddings` are non-empty text, and not too many."""
    for name, limit in (("loras", MAX_LORAS), ("embeddings", MAX_EMBEDDINGS)):
        values = getattr(opts, name, ())
        if len(values) > limit:
            raise SdenhanceError(f"`{name}`: at most {limit}; got {len(values)}")
        for value in values:
            if not isinstance(value, str) or not value.strip():
                raise SdenhanceError(f"`{name}` entries must be non-empty text; got {value!r}")


@dataclass(frozen=True)
class NetworkOptions:
    """Base of a generative stage's `Options`: `loras`, `embeddings`, `clip_skip` and their
    check (a stage with its own `check` calls `super().check()`)."""

    loras: tuple[str, ...] = loras_option()
    embeddings: tuple[str, ...] = embeddings_option()
    clip_skip: int | None = clip_skip_option()

    def check(self) -> None:
        check_networks(self)
