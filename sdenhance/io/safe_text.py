"""Text that came from a file or a user: bounded before parsing, escaped before printing.

Metadata chunks, re-run records, model configs and safetensors headers are read as JSON;
`load_json` caps their length and nesting depth, so a crafted file can neither exhaust the
recursion limit (the C decoder raises `RecursionError` at ~1000 levels and everything that
walks the result recursively fails much earlier) nor hold gigabytes of nodes. `printable`
makes any such text safe for a terminal: control characters (ESC, OSC, BEL, C1) and the
invisible format characters that reorder text (bidi overrides and isolates) become visible
escapes, so a prompt can neither retitle the terminal nor hide what a line really says.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

MAX_TEXT_CHARS = 256 * 1024
"""Longest metadata text parsed (A1111 parameters, Midjourney, XMP): far above real prompts."""

MAX_JSON_CHARS = 2 * 1024 * 1024
"""Longest JSON text parsed: above Pillow's 1 MB cap per PNG text chunk, which ComfyUI
workflows already fit in."""

MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted: our records nest 4 levels, ComfyUI graphs fewer than 12."""

# format characters that join emoji and scripts; they cannot reorder or hide text
_HARMLESS_FORMAT = {"\u200c", "\u200d"}


class UnsafeJSON(ValueError):
    """JSON text refused: invalid, too long or nested too deeply (the message says which)."""


def load_json(text: str | bytes, *, max_chars: int = MAX_JSON_CHARS) -> Any:
    """Parse untrusted JSON within `max_chars` and `MAX_JSON_DEPTH`, or raise `UnsafeJSON`.

    The length is checked before parsing and the depth after it, without recursion, so the
    cost is linear in the text and a caller may walk the result recursively.
    """
    if len(text) > max_chars:
        raise UnsafeJSON(f"{len(text):,} characters, more than the {max_chars:,} allowed")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UnsafeJSON(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise UnsafeJSON(f"not valid JSON ({short(str(exc), 80)})") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise UnsafeJSON(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return value


MAX_TOML_BYTES = 1024 * 1024
"""Largest TOML file read (recipes, presets, config): thousands of times a real one."""


def load_toml(data: bytes | str, *, max_bytes: int = MAX_TOML_BYTES) -> dict[str, Any]:
    """Parse untrusted TOML (UTF-8 bytes or text) within `max_bytes` and `MAX_JSON_DEPTH`.

    Raises `UnsafeJSON`-like `ValueError`s with a short reason: not UTF-8, not valid TOML (with
    tomllib's line and column), an integer too long to convert, or nested too deeply.
    """
    import tomllib

    if len(data) > max_bytes:
        raise ValueError(f"{len(data):,} bytes, more than the {max_bytes:,} allowed")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})"
            ) from None
    try:
        value = tomllib.loads(data)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML ({exc})") from None
    except RecursionError:
        raise ValueError(
            f"not valid TOML (nested more than {MAX_JSON_DEPTH} levels deep)"
        ) from None
    except ValueError as exc:  # an integer of thousands of digits
        raise ValueError(f"not valid TOML ({short(str(exc), 80)})") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"not valid TOML (nested more than {MAX_JSON_DEPTH} levels deep)")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, `[]` is 1), computed without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def needs_escape(char: str) -> bool:
    """Control (Cc), line/paragraph separator (Zl, Zp), surrogate (Cs) or a format character
    (Cf: bidi overrides, isolates, marks) other than the zero-width joiners."""
    category = unicodedata.category(char)
    return category in ("Cc", "Zl", "Zp", "Cs") or (
        category == "Cf" and char not in _HARMLESS_FORMAT
    )


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, *, keep: str = "\n\t") -> str:
    """`text` with every character `needs_escape` names shown as `\\x1b`, `\\u202e`...;
    the characters in `keep` (newline and tab by default) stay as they are."""
    if text.isprintable():  # the common case: nothing to do, checked in C
        return text
    return "".join(_escape(c) if c not in keep and needs_escape(c) else c for c in text)


def one_line(text: str) -> str:
    """`printable` with newlines and tabs escaped too: the text cannot break a one-line message."""
    return printable(text, keep="")


def short(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters with `…` and the length dropped, for messages."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def terminal_json(value: Any, **dumps: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, ...)` with the characters `needs_escape` names
    written as `\\uXXXX` escapes: the same JSON value, safe to print.

    `json.dumps` already escapes C0 controls; what it leaves raw (DEL, C1 controls, bidi and
    other format characters, U+2028/9) can only occur inside strings, where an escape is exact.
    """
    text = json.dumps(value, ensure_ascii=False, **dumps)
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(_json_escape(c) if c != "\n" and needs_escape(c) else c for c in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
