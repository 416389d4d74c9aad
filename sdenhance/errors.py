"""The one exception type for user errors.

Anything raised as `SdenhanceError` is the user's to fix (bad input, bad option, missing model):
the CLI prints its message as one line on stderr and exits 2. Every other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations


class SdenhanceError(Exception):
    """A user error: bad input, bad option, missing model. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.hint = hint
        text = message if hint is None else f"{message} ({hint})"
        # one line, whatever a file or path named in it holds
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"))
