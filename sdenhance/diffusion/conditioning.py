"""A stage's prompt, LoRAs and embeddings -> pipeline embeddings, with the LoRAs applied for
the duration of one `with` block (text encoding and denoising both happen inside it).

    with conditioned(engine, pipe, opts, guidance=True) as (cond, record):
        pipe(**cond.pipe_kwargs(), ...)
    ctx.record.update(record)

`opts` is any stage options object with `prompt`, `negative_prompt`, `loras`, `embeddings`
and `clip_skip`; `<lora:NAME:W>` tags in either prompt join `opts.loras`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.models import embeddings as ti
from sdenhance.models import loras as lora_files
from sdenhance.models.prompts import Conditioning, encode
from sdenhance.ops.prompt_syntax import LoraRef, extract_loras, names_a_path, parse_lora_spec

log = logging.getLogger("sdenhance")


def prompt_loras(opts: Any) -> tuple[str, str, list[LoraRef]]:
    """(prompt, negative prompt) without network tags, and every LoRA asked for: the option's
    first, then the prompts' tags; a LoRA named twice keeps its last weight."""
    prompt, from_prompt, other = extract_loras(getattr(opts, "prompt", "") or "")
    negative, from_negative, other_neg = extract_loras(getattr(opts, "negative_prompt", "") or "")
    for ref in from_prompt + from_negative:
        if names_a_path(ref.name):  # a prompt (perhaps from a request) never names a file
            raise SdenhanceError(
                f"<lora:{ref.name}> must name a LoRA in the LoRA folders, not a file",
                hint="give a path with --lora PATH[:WEIGHT] instead",
            )
    for tag in other + other_neg:
        log.warning("%s: hypernetworks are not supported; the tag is ignored", tag)
    refs: dict[str, LoraRef] = {}
    for ref in [parse_lora_spec(s) for s in getattr(opts, "loras", ())] + from_prompt:
        refs.pop(ref.name, None)
        refs[ref.name] = ref
    for ref in from_negative:
        log.warning("<lora:%s> in the negative prompt is applied like any other LoRA", ref.name)
        refs.pop(ref.name, None)
        refs[ref.name] = ref
    return prompt, negative, list(refs.values())


@contextlib.contextmanager
def conditioned(
    engine: Any, pipe: Any, opts: Any, *, guidance: bool
) -> Iterator[tuple[Conditioning, dict[str, Any]]]:
    """Resolve, apply and encode (module docstring); yields (embeddings, record entries)."""
    prompt, negative, refs = prompt_loras(opts)
    loras = [lora_files.resolve_lora(ref) for ref in refs]
    allow = engine.config.allow_pickle
    texts = [prompt, negative if guidance else ""]
    found = ti.gather(texts, getattr(opts, "embeddings", ()), pipe, allow_pickle=allow)
    widths = ti.encoder_widths(pipe)
    vectors = {name: emb.for_encoders(widths) for name, emb in found.items()}
    record: dict[str, Any] = {}
    if loras:
        record["loras"] = [lora.record() for lora in loras]
    if found:
        record["embeddings"] = [emb.record() for emb in found.values()]
    family = "sdxl" if len(widths) == 2 else "sd15"  # the pipeline's, not the base model's
    with lora_files.applied(pipe, loras, family, allow_pickle=allow):
        cond = encode(
            pipe,
            prompt,
            negative,
            guidance=guidance,
            clip_skip=getattr(opts, "clip_skip", None),
            embeddings=vectors,
            device=engine.device,
        )
        if cond.chunks > 1:
            record["prompt_chunks"] = cond.chunks
        yield cond, record
