"""Prompt text -> the embeddings a pipeline takes, the AUTOMATIC1111 way.

Why our own encoder and not `compel`: compel reads its own syntax (`word++`, `(word)1.2`), not
A1111's `(word:1.2)`/`[word]`/`BREAK`; it weighs by interpolating from the empty prompt's
embedding and blends masked prompts for weights below 1, where A1111 multiplies each token's
embedding by its weight and rescales the chunk to its original mean; and it has no comma
backtracking or `BREAK`. `sd_embed` follows A1111 more closely but is not published as a package.
So the parsing lives in `sdenhance.ops.prompt_syntax` (pure, tested against A1111's rules) and
this module runs the text encoders:

- each prompt is cut into 75-token chunks (`chunk_pieces`), each chunk encoded as 77 tokens,
  and the chunks concatenated; prompt and negative are padded with empty chunks to one length;
- weights: z × w per token, then z × (mean before / mean after) per chunk (A1111's "Original");
- clip skip N: SD 1.5 takes hidden state N from the end and applies the final layer norm
  (A1111); SDXL takes hidden state N from the end of both encoders (default 2, the
  penultimate layer SDXL was trained on), as ComfyUI's "CLIP set last layer" does;
- SDXL: CLIP-L and CLIP-G outputs concatenated per token; the pooled embedding is CLIP-G's
  projection of the first chunk; an empty negative prompt gives zeros when the pipeline's
  `force_zeros_for_empty_prompt` says so (as diffusers does);
- textual-inversion vectors replace the token embeddings at their slots through a forward
  hook on the embedding layer, removed after the call: tokenizer and encoder stay as loaded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sdenhance.errors import SdenhanceError
from sdenhance.ops import prompt_syntax as syntax

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sdenhance")


@dataclass
class Conditioning:
    """Embeddings for one prompt/negative pair (negative None without guidance)."""

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    negative_pooled: torch.Tensor | None = None
    chunks: int = 1

    def pipe_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a diffusers pipeline call (instead of prompt strings)."""
        out: dict[str, Any] = {"prompt_embeds": self.prompt_embeds}
        if self.negative_prompt_embeds is not None:
            out["negative_prompt_embeds"] = self.negative_prompt_embeds
        if self.pooled is not None:
            out["pooled_prompt_embeds"] = self.pooled
            if self.negative_pooled is not None:
                out["negative_pooled_prompt_embeds"] = self.negative_pooled
        return out


def encoders(pipe: Any) -> list[tuple[Any, Any]]:
    """(tokenizer, text encoder) pairs of a pipeline: one for SD 1.5, two for SDXL."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return [(t, e) for t, e in pairs if t is not None and e is not None]


def encode(
    pipe: Any,
    prompt: str,
    negative: str | None,
    *,
    guidance: bool,
    clip_skip: int | None = None,
    embeddings: Mapping[str, list[torch.Tensor]] | None = None,
    device: Any = None,
) -> Conditioning:
    """Encode `prompt` (and `negative` when `guidance`) with A1111 syntax; LoRA tags must be
    gone already. `embeddings`: name -> one (vectors, dim) tensor per text encoder."""
    import torch

    pairs = encoders(pipe)
    sdxl = len(pairs) == 2
    if clip_skip is not None and clip_skip < 1:
        raise SdenhanceError(f"`clip_skip` must be ≥ 1; got {clip_skip}")
    for text in (prompt, negative or ""):
        try:
            syntax.check_size(text)
        except ValueError as exc:
            raise SdenhanceError(str(exc), hint="shorten the prompt") from None
    for group in syntax.unsupported_syntax(prompt) + syntax.unsupported_syntax(negative or ""):
        log.warning("prompt editing/alternation %r is not scheduled; read as emphasis", group)
    texts = [prompt] + ([negative or ""] if guidance else [])
    embeddings = dict(embeddings or {})
    with torch.no_grad():
        per_encoder = []  # [encoder][text] -> list of (77, D) chunks
        pooled: list[torch.Tensor] = []
        for index, (tokenizer, encoder) in enumerate(pairs):
            vectors = {name: vecs[index] for name, vecs in embeddings.items()}
            outs = [
                _encode_text(tokenizer, encoder, t, vectors, clip_skip, sdxl, device) for t in texts
            ]
            per_encoder.append([o[0] for o in outs])
            if sdxl and index == 1:
                pooled = [o[1] for o in outs]
        # pad prompt and negative to the same number of chunks with empty chunks
        count = max(len(chunks) for enc in per_encoder for chunks in enc)
        for index, (tokenizer, encoder) in enumerate(pairs):
            for chunks in per_encoder[index]:
                if len(chunks) < count:
                    empty = _encode_text(tokenizer, encoder, "", {}, clip_skip, sdxl, device)[0]
                    chunks.extend(empty * (count - len(chunks)))
        joined = [
            torch.cat([torch.cat(per_encoder[e][t], dim=0) for e in range(len(pairs))], dim=-1)[
                None
            ]
            for t in range(len(texts))
        ]
    cond = Conditioning(joined[0], joined[1] if guidance else None, chunks=count)
    if sdxl:
        cond.pooled = pooled[0][None]
        if guidance:
            cond.negative_pooled = pooled[1][None]
            if not (negative or "").strip() and getattr(
                pipe.config, "force_zeros_for_empty_prompt", False
            ):
                cond.negative_prompt_embeds = torch.zeros_like(joined[1])
                cond.negative_pooled = torch.zeros_like(cond.negative_pooled)
    return cond


def _encode_text(
    tokenizer: Any,
    encoder: Any,
    text: str,
    vectors: Mapping[str, torch.Tensor],
    clip_skip: int | None,
    sdxl: bool,
    device: Any,
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """One text through one encoder -> ([(77, D) per chunk], pooled of the first chunk)."""
    import torch

    parts = syntax.parse_attention(text)
    pieces = syntax.build_pieces(
        parts,
        lambda s: tokenizer(s, add_special_tokens=False, truncation=False).input_ids,
        {name: int(v.shape[0]) for name, v in vectors.items()},
    )
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    comma = comma if comma != tokenizer.unk_token_id else None
    chunks = syntax.chunk_pieces(pieces, comma=comma, placeholder=0, pad=end)
    if len(chunks) > syntax.MAX_CHUNKS:
        raise SdenhanceError(
            f"the prompt is {len(chunks)} chunks of 75 tokens; at most {syntax.MAX_CHUNKS} are "
            "read",
            hint="shorten the prompt",
        )
    rows = []
    for chunk in chunks:
        ids = [start, *chunk.tokens, end]
        first_end = ids.index(end)
        rows.append(ids[: first_end + 1] + [pad] * (len(ids) - first_end - 1))
    device = device if device is not None else encoder.device
    zs, pooled = [], None
    for i, (chunk, row) in enumerate(zip(chunks, rows, strict=True)):
        # one chunk per call, as A1111 does: a chunk's embedding never depends on the others
        ids = torch.tensor([row], dtype=torch.long, device=device)
        fixes = [(0, 1 + offset, vectors[name]) for offset, name in chunk.embeddings]
        with _inject(encoder, fixes):
            out = encoder(ids, output_hidden_states=True)
        hidden = out.hidden_states
        if sdxl:
            z = hidden[-(clip_skip or 2)]
        elif clip_skip and clip_skip > 1:
            model = getattr(encoder, "text_model", encoder)
            z = model.final_layer_norm(hidden[-clip_skip])
        else:
            z = out.last_hidden_state
        weights = torch.tensor([1.0, *chunk.weights, 1.0], dtype=torch.float32, device=z.device)
        zs.append(_emphasis(z[0], weights))
        if i == 0 and sdxl and hasattr(out, "text_embeds"):
            pooled = out.text_embeds[0]
    return zs, pooled


def _emphasis(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A1111's "Original" emphasis: scale each token, then restore the chunk's mean."""
    if bool((weights == 1.0).all()):
        return z
    zf = z.float()
    before = zf.mean()
    zf = zf * weights[:, None]
    zf = zf * (before / zf.mean())
    return zf.to(z.dtype)


@contextlib.contextmanager
def _inject(encoder: Any, fixes: list[tuple[int, int, torch.Tensor]]) -> Iterator[None]:
    """Put textual-inversion vectors at their token slots for the duration of one call."""
    if not fixes:
        yield
        return
    layer = encoder.get_input_embeddings()

    def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for row, at, vec in fixes:
            output[row, at : at + vec.shape[0]] = vec.to(output.device, output.dtype)
        return output

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
