"""AUTOMATIC1111 prompt syntax as plain data: weighted runs, `BREAK`, `<lora:…>` tags, chunks.

A1111's rules, re-implemented from its documented behaviour (no code copied):
  (text)        weight × 1.1        ((text)) × 1.21, and so on
  [text]        weight ÷ 1.1
  (text:1.3)    weight × 1.3        nested brackets multiply
  \\( \\) \\[ \\]   literal brackets
  BREAK         ends the current 75-token chunk (the rest starts a new one)
  <lora:NAME:W> a LoRA at weight W (default 1), removed from the text
Unclosed brackets weigh from where they open to the end, as in A1111. Prompt editing
(`[a:b:0.5]`) and alternation (`[a|b]`) are not scheduled per step here: they are read as
emphasis and reported by `unsupported_syntax`.

Chunking follows A1111's `tokenize_line`: 75 tokens per chunk between a start and an end token;
when a chunk fills up within 20 tokens of its last comma, the words after that comma move to the
next chunk, so a phrase is not cut in two; a textual-inversion embedding is never split across
chunks. Pure Python: token ids come from the caller's tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ROUND = 1.1
SQUARE = 1 / 1.1
CHUNK = 75  # prompt tokens per chunk; the encoder reads 77 with the start and end tokens
COMMA_BACKTRACK = 20  # A1111's default `comma_padding_backtrack`
MAX_CHUNKS = 32  # 2400 tokens: longer prompts are refused rather than cut or left to run long

_ATTENTION = re.compile(
    r"""
    \\\(|\\\)|\\\[|\\\]|\\\\|\\|   # escapes
    \(|\[|                          # openers
    :\s*([+-]?[.\d]+)\s*\)|         # a weight closing a round bracket
    \)|\]|                          # closers
    [^\\()\[\]:]+|                  # plain text
    :                               # a colon that closes nothing
    """,
    re.VERBOSE,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_LORA_TAG = re.compile(r"<(lora|lyco):([^>]*)>", re.IGNORECASE)
_OTHER_TAG = re.compile(r"<(hypernet):([^>]*)>", re.IGNORECASE)
_EDITING = re.compile(r"\[[^\[\]]*:[^\[\]]*:\s*[\d.]+\s*\]|\[[^\[\]]*\|[^\[\]]*\]")


@dataclass(frozen=True)
class Run:
    """A piece of prompt text and its weight."""

    text: str
    weight: float


class _Break:
    """The `BREAK` marker between runs."""

    def __repr__(self) -> str:
        return "BREAK"


BREAK = _Break()
Part = Run | _Break


def parse_attention(text: str) -> list[Part]:
    """A1111 prompt text -> weighted runs and BREAK markers (neighbours of equal weight merged)."""
    out: list[Part] = []
    weights: list[float] = []  # per run in `out` (BREAK: None)
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for i in range(start, len(out)):
            if isinstance(out[i], Run):
                weights[i] *= factor

    for m in _ATTENTION.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            out.append(Run(piece[1:], 1.0))
            weights.append(1.0)
        elif piece == "(":
            round_open.append(len(out))
        elif piece == "[":
            square_open.append(len(out))
        elif weight is not None and round_open:
            multiply(round_open.pop(), _float(weight))
        elif piece == ")" and round_open:
            multiply(round_open.pop(), ROUND)
        elif piece == "]" and square_open:
            multiply(square_open.pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(piece)):
                if i > 0:
                    out.append(BREAK)
                    weights.append(0.0)
                out.append(Run(part, 1.0))
                weights.append(1.0)
    for start in round_open:
        multiply(start, ROUND)
    for start in square_open:
        multiply(start, SQUARE)
    parts: list[Part] = [
        Run(p.text, w) if isinstance(p, Run) else p for p, w in zip(out, weights, strict=True)
    ]
    return _merge(parts) or [Run("", 1.0)]


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def _merge(parts: list[Part]) -> list[Part]:
    merged: list[Part] = []
    for p in parts:
        last = merged[-1] if merged else None
        if isinstance(p, Run) and isinstance(last, Run) and last.weight == p.weight:
            merged[-1] = Run(last.text + p.text, p.weight)
        else:
            merged.append(p)
    return merged


def unsupported_syntax(text: str) -> list[str]:
    """Prompt editing / alternation groups, read here as plain emphasis (to warn about)."""
    return [m.group(0) for m in _EDITING.finditer(text)]


# ---------------------------------------------------------------------------------------------
# LoRA tags and specs


@dataclass(frozen=True)
class LoraRef:
    """A LoRA by name or path, at a weight."""

    name: str
    weight: float = 1.0

    def spec(self) -> str:
        return f"{self.name}:{self.weight:g}"


def extract_loras(text: str) -> tuple[str, list[LoraRef], list[str]]:
    """(text without tags, LoRAs of `<lora:NAME[:W[:…]]>` tags, other network tags removed).

    A1111 extra arguments (a separate text-encoder weight, block weights) are not read: the
    first number weighs the whole LoRA. `<hypernet:…>` tags are removed and returned.
    """
    loras: list[LoraRef] = []
    for m in _LORA_TAG.finditer(text):
        fields = m.group(2).split(":")
        name = fields[0].strip()
        if not name:
            continue
        weight = _float(fields[1].strip()) if len(fields) > 1 and fields[1].strip() else 1.0
        loras.append(LoraRef(name, weight))
    others = [m.group(0) for m in _OTHER_TAG.finditer(text)]
    clean = _OTHER_TAG.sub("", _LORA_TAG.sub("", text))
    return clean, loras, others


WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
MAX_PROMPT_CHARS = 16_000
MAX_BRACKETS = 500


def names_a_path(name: str) -> bool:
    """True when a LoRA/embedding name could point at a file rather than name one in a folder."""
    return (
        "/" in name
        or "\\" in name
        or name.startswith("~")
        or name.lower().endswith(WEIGHT_SUFFIXES)
    )


def check_size(text: str) -> None:
    """Refuse prompts too long or too deeply bracketed to parse in bounded time (ValueError)."""
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {len(text)} characters; at most {MAX_PROMPT_CHARS}")
    brackets = text.count("(") + text.count("[")
    if brackets > MAX_BRACKETS:
        raise ValueError(f"the prompt opens {brackets} brackets; at most {MAX_BRACKETS}")


def parse_lora_spec(spec: str) -> LoraRef:
    """`NAME_OR_PATH[:WEIGHT]` -> LoraRef; a colon not followed by a number belongs to the path."""
    spec = spec.strip()
    head, colon, tail = spec.rpartition(":")
    if colon and head and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)\s*", tail):
        return LoraRef(head.strip(), float(tail))
    return LoraRef(spec, 1.0)


# ---------------------------------------------------------------------------------------------
# chunking


@dataclass(frozen=True)
class Piece:
    """Tokens of one run, or one textual-inversion embedding (`embedding` set, `tokens` empty)."""

    tokens: tuple[int, ...]
    weight: float
    embedding: str | None = None
    vectors: int = 0


@dataclass
class Chunk:
    """75 prompt tokens (padded), their weights, and where embeddings go: (offset, name)."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    embeddings: list[tuple[int, str]] = field(default_factory=list)


def split_embeddings(text: str, names: Sequence[str]) -> list[tuple[str, str | None]]:
    """`text` cut at whole-word, case-insensitive mentions of embedding `names`:
    [(text, None) | (name, name)], longest names first so `bad-hands-5` beats `bad`."""
    if not names or not text:
        return [(text, None)]
    ordered = sorted(set(names), key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(re.escape(n) for n in ordered) + r")(?![\w-])", re.I
    )
    by_lower = {n.lower(): n for n in ordered}
    out: list[tuple[str, str | None]] = []
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append((text[pos : m.start()], None))
        out.append((m.group(0), by_lower[m.group(0).lower()]))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def chunk_pieces(
    pieces: Sequence[Piece | _Break],
    *,
    comma: int | None,
    placeholder: int,
    pad: int,
    chunk: int = CHUNK,
    backtrack: int = COMMA_BACKTRACK,
) -> list[Chunk]:
    """Lay token pieces into chunks of exactly `chunk` tokens, as A1111 does (module docstring).

    Padding uses `pad` (the caller adds the start/end tokens); embedding slots hold
    `placeholder` and are listed in `Chunk.embeddings`. Always at least one chunk.
    """
    chunks: list[Chunk] = []
    cur = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal cur, last_comma
        missing = chunk - len(cur.tokens)
        cur.tokens += [pad] * missing
        cur.weights += [1.0] * missing
        chunks.append(cur)
        cur = Chunk()
        last_comma = -1

    for piece in pieces:
        if isinstance(piece, _Break):
            close()
            continue
        if piece.embedding is not None:
            n = max(1, piece.vectors)
            if n > chunk:
                raise ValueError(f"embedding {piece.embedding} has {n} vectors; at most {chunk}")
            if len(cur.tokens) + n > chunk:
                close()
            cur.embeddings.append((len(cur.tokens), piece.embedding))
            cur.tokens += [placeholder] * n
            cur.weights += [piece.weight] * n
            continue
        for token in piece.tokens:
            if token == comma:
                last_comma = len(cur.tokens)
            elif (
                backtrack
                and len(cur.tokens) == chunk
                and last_comma != -1
                and len(cur.tokens) - last_comma <= backtrack
            ):
                cut = last_comma + 1
                moved = (cur.tokens[cut:], cur.weights[cut:])
                moved_emb = [(o - cut, n) for o, n in cur.embeddings if o >= cut]
                cur.tokens, cur.weights = cur.tokens[:cut], cur.weights[:cut]
                cur.embeddings = [(o, n) for o, n in cur.embeddings if o < cut]
                close()
                cur.tokens, cur.weights = list(moved[0]), list(moved[1])
                cur.embeddings = moved_emb
            if len(cur.tokens) == chunk:
                close()
            cur.tokens.append(token)
            cur.weights.append(piece.weight)
    if cur.tokens or not chunks:
        close()
    return chunks


def build_pieces(
    parts: Sequence[Part],
    tokenize: Callable[[str], list[int]],
    embeddings: dict[str, int],
) -> list[Piece | _Break]:
    """Weighted runs -> token pieces, with mentions of `embeddings` (name -> vectors) cut out."""
    pieces: list[Piece | _Break] = []
    for part in parts:
        if isinstance(part, _Break):
            pieces.append(BREAK)
            continue
        for text, name in split_embeddings(part.text, list(embeddings)):
            if name is not None:
                pieces.append(Piece((), part.weight, name, embeddings[name]))
            elif text:
                ids = tokenize(text)
                if ids:
                    pieces.append(Piece(tuple(ids), part.weight))
    return pieces
