"""The one exception type for user errors.

Anything raised as `SdenhanceError` is the user's to fix (bad input, bad option, missing model):
the CLI prints its message as one line on stderr and exits 2. Every other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any


class SdenhanceError(Exception):
    """A user error: bad input, bad option, missing model. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.hint = hint
        text = message if hint is None else f"{message} ({hint})"
        # one line, whatever a file or path named in it holds
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"))


# option names in messages: keyword names for the Python API, flags on the command line
_CLI_NAMES: ContextVar[bool] = ContextVar("sdenhance_cli_names", default=False)
_NO_VALUE = object()


@contextmanager
def cli_names() -> Iterator[None]:
    """Within this block, messages name options as command-line flags (`--creativity 0`)."""
    token = _CLI_NAMES.set(True)
    try:
        yield
    finally:
        _CLI_NAMES.reset(token)


def option_text(name: str, value: Any = _NO_VALUE) -> str:
    """How a message names an option set to `value`: `creativity=0` / `--creativity 0`,
    `refine=False` / `--no-refine`, `model=PATH` / `--model PATH`."""
    if _CLI_NAMES.get():
        flag = "--" + name.replace("_", "-")
        if value is True or value is _NO_VALUE:
            return flag
        if value is False:
            return "--no-" + name.replace("_", "-")
        return f"{flag} {value}"
    return name if value is _NO_VALUE else f"{name}={value}"


_ROLE_OPTIONS = {"pipeline": "model", "controlnet": "controlnet"}


class ModelNotFoundError(SdenhanceError):
    """A model spec that names nothing usable. Its fixes are named for the caller: the option
    that takes the model (`option`, from the role unless set), going online when a download
    could help (`online`), and the offline alternative of the stage that needed the model
    (`offline`: option, value, what it gives), set by `apply_stage`."""

    def __init__(self, message: str, *, role: str, online: bool = True, local: bool = False):
        super().__init__(message)
        self.message = message
        self.role = role
        self.option = _ROLE_OPTIONS.get(role, "model")
        self.online = online
        self.local = local  # a local path that does not exist: the fix is the path itself
        self.offline: tuple[str, Any, str] | None = None

    def __str__(self) -> str:
        text = f"{self.message} ({self.fixes()})"
        return text.replace("\r", "\\r").replace("\n", "\\n")  # one line, as every error

    def fixes(self) -> str:
        if self.local:
            parts = [f"check the path given to {option_text(self.option)}"]
        else:
            parts = [
                f"pass {option_text(self.option, 'PATH')} to a diffusers folder or .safetensors "
                "file"
            ]
            if self.online:
                parts.append("go online once (unset HF_HUB_OFFLINE) to download it")
        if self.offline is not None:
            name, value, gives = self.offline
            parts.append(f"use {option_text(name, value)} {gives}")
        if len(parts) == 1:
            return parts[0]
        return ", ".join(parts[:-1]) + ", or " + parts[-1]
