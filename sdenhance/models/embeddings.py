"""Textual-inversion embeddings: A1111 and diffusers files, SD 1.5 and SDXL, by name or path.

Formats read: A1111 `.safetensors` (`emb_params`), A1111 SDXL (`clip_l` + `clip_g`), A1111
`.pt` pickles (`string_to_param.*`, only with --allow-pickle, weights-only), diffusers
(`<token>` -> vector). The name used in prompts is the file's stem, as in A1111. The vectors
are handed to `sdenhance.models.prompts.encode`, which puts them in place for one call: the
tokenizer and text encoders are never changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdenhance.errors import SdenhanceError
from sdenhance.models import library
from sdenhance.ops.prompt_syntax import CHUNK, split_embeddings

if TYPE_CHECKING:
    import torch

log = logging.getLogger("sdenhance")


@dataclass(frozen=True)
class Embedding:
    """One embedding file: its name, path, short hash and vectors by encoder key."""

    name: str
    path: Path
    hash: str
    vectors: dict[str, torch.Tensor]  # "clip_l"/"clip_g" (SDXL) or "single"

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash}

    def for_encoders(self, widths: list[int]) -> list[torch.Tensor] | None:
        """One (n, width) tensor per text encoder, or None when made for another family."""
        if len(widths) == 2:
            pair = [self.vectors.get("clip_l"), self.vectors.get("clip_g")]
            if any(v is None for v in pair):
                return None
            tensors = pair
        else:
            single = self.vectors.get("single")  # an SDXL pair is not for SD 1.5 (as A1111)
            if single is None:
                return None
            tensors = [single]
        ok = all(t.shape[-1] == w for t, w in zip(tensors, widths, strict=True))
        return [t.reshape(-1, t.shape[-1]) for t in tensors] if ok else None


def load_embedding(path: Path, *, allow_pickle: bool) -> Embedding:
    """Read an embedding file (module docstring for the layouts)."""
    from sdenhance.models.hashes import sha256_file

    tensors = library.read_tensors(path, allow_pickle=allow_pickle, what="embedding")
    if "clip_l" in tensors and "clip_g" in tensors:
        vectors = {"clip_l": tensors["clip_l"], "clip_g": tensors["clip_g"]}
    elif "emb_params" in tensors:
        vectors = {"single": tensors["emb_params"]}
    else:
        params = [v for k, v in tensors.items() if k.startswith("string_to_param.")]
        if not params and len(tensors) == 1:
            params = list(tensors.values())  # diffusers: {"<token>": vector}
        if len(params) != 1:
            raise SdenhanceError(
                f"{path} is not a textual-inversion embedding this program reads "
                f"(keys: {', '.join(sorted(tensors)[:5])})"
            )
        vectors = {"single": params[0]}
    for key, tensor in vectors.items():
        if tensor.dim() not in (1, 2) or tensor.reshape(-1, tensor.shape[-1]).shape[0] > CHUNK:
            raise SdenhanceError(
                f"embedding {path.name}: `{key}` has shape {tuple(tensor.shape)}; "
                f"expected at most {CHUNK} vectors"
            )
        vectors[key] = tensor.detach().float()
    return Embedding(path.stem, path, sha256_file(path)[:12], vectors)


def encoder_widths(pipe: Any) -> list[int]:
    """Token-embedding width of each text encoder of a pipeline."""
    from sdenhance.models.prompts import encoders

    return [enc.get_input_embeddings().weight.shape[1] for _, enc in encoders(pipe)]


def gather(
    texts: Iterable[str], explicit: Iterable[str], pipe: Any, *, allow_pickle: bool
) -> dict[str, Embedding]:
    """Embeddings for a call: each `explicit` one (name or path; missing or of the wrong family
    is an error), and each name from the embedding folders that the texts mention (of the
    wrong family: a warning, and the word stays plain text)."""
    widths = encoder_widths(pipe)
    family = "SDXL" if len(widths) == 2 else "SD 1.5"
    found: dict[str, Embedding] = {}
    for spec in explicit:
        path = library.find("embeddings", spec)
        if path is None:
            dirs = ", ".join(str(d) for d in library.search_dirs("embeddings"))
            raise SdenhanceError(
                f"embedding `{spec}` not found (looked for a file, then a name in: {dirs})",
                hint="give its path, or put the file in one of those folders",
            )
        emb = load_embedding(path, allow_pickle=allow_pickle)
        if emb.for_encoders(widths) is None:
            raise SdenhanceError(
                f"embedding {emb.name} does not fit this {family} model's text encoder(s)",
                hint="use an embedding made for the model's family",
            )
        found[emb.name] = emb
    texts = [t for t in texts if t]
    if not texts:
        return found
    known = library.catalogue("embeddings")
    names = {path.stem: path for path in known.values() if path.stem not in found}
    mentioned = {
        name
        for text in texts
        for _, name in split_embeddings(text, list(names))
        if name is not None
    }
    for name in sorted(mentioned):
        emb = load_embedding(names[name], allow_pickle=allow_pickle)
        if emb.for_encoders(widths) is None:
            log.warning("embedding %s is not for this %s model; read as plain text", name, family)
            continue
        found[emb.name] = emb
    return found
