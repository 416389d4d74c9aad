"""What reaches the terminal: user-derived text printed literally, library chatter kept out.

File names, prompts, stage and recipe names come from users and files. Printed through Rich
with markup on, `p[b]q.png` silently loses its `[b]` and `x[/]y.png` raises `MarkupError`
after the work is done; printed raw, an ESC or OSC sequence in a prompt can retitle or
recolour the terminal. The consoles here therefore print text literally (no markup, emoji or
highlighting unless a call asks for them) and show control and bidi characters as escapes;
our own styling is built from `Text` parts. Python warnings and the log records of libraries
(tifffile, Pillow's "Corrupt EXIF data", torch's unpickler) become debug records of the
`sdenhance` logger: visible with `--verbose`, never stray lines around an `error:` line.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from sdenhance.io.safe_text import one_line, printable

log = logging.getLogger("sdenhance")


class SafeConsole(Console):
    """A Rich console that prints strings literally, with control characters escaped."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        kwargs.setdefault("emoji", False)
        kwargs.setdefault("highlight", False)
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:  # type: ignore[override]
        return super().render_str(printable(text), **kwargs)


class SafeRichHandler(RichHandler):
    """Log records with control characters escaped (file names and prompts appear in them)."""

    def render_message(self, record: logging.LogRecord, message: str) -> Any:
        return super().render_message(record, printable(message))


def literal(*parts: str | tuple[str, str]) -> Text:
    """Styled text from literal parts (`"text"` or `("text", "style")`), control codes escaped:
    the way to style output without reading user text as markup."""
    return Text.assemble(
        *((printable(p[0]), p[1]) if isinstance(p, tuple) else printable(p) for p in parts)
    )


def error_line(message: str) -> Text:
    """`error: MESSAGE` as one line: the message escaped, never read as markup."""
    return Text.assemble(("error:", "bold red"), " ", one_line(message))


class _ToDebug(logging.Handler):
    """Hands records of other loggers to the `sdenhance` logger at debug level."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "sdenhance" or record.name.startswith("sdenhance."):
            # our logger without its handler (a command that sets up no logging): as before
            if logging.lastResort is not None and record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)
            return
        try:
            log.debug("%s: %s", record.name, record.getMessage())
        except Exception:  # a library's malformed record must not break the command
            pass


def _warning_to_debug(message, category, filename, lineno, file=None, line=None) -> None:
    log.debug("%s: %s", category.__name__, message)


def quiet_libraries() -> None:
    """Route Python warnings and library log records to our debug log (idempotent)."""
    warnings.showwarning = _warning_to_debug
    root = logging.getLogger()
    if not any(isinstance(h, _ToDebug) for h in root.handlers):
        root.addHandler(_ToDebug())
