"""Paths from users and files: inputs that must be plain files, outputs that must be writable.

Inputs are checked with `stat` before anything opens them, so a FIFO, socket or device named
`in.png` is refused instead of blocking the process on `open`. Output names come from
templates filled with values taken from input file names and options: `fill_template` makes
every field a plain substitution that can never add a path part, and `output_problem` finds
what would make a write fail (a name the file system cannot hold, a folder that is not
writable, no free inodes) before any work is spent on the result.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def require_file(path: Path, what: str = "input", kind: str = "an image") -> os.stat_result:
    """`stat` of `path` when it is a regular file; else one user error saying what it is."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SdenhanceError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise SdenhanceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SdenhanceError(f"{what} {path} is a folder, not {kind}")
    if not stat.S_ISREG(info.st_mode):
        found = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise SdenhanceError(f"{what} {path} is {found}, not {kind}; refused")
    return info


# --------------------------------------------------------------------------------------------
# output templates

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def safe_part(value: Any) -> str:
    """`value` as text that stays inside one path component: separators and control
    characters become `_`, and a value of only dots (`..`) becomes underscores."""
    text = _UNSAFE.sub("_", str(value))
    return "_" * len(text) if text and set(text) == {"."} else text


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """`template` with each `{name}` replaced by `safe_part(values[name])`; `{{`/`}}` are
    literal braces. Anything else in braces (format specs, indexing, attributes) is refused:
    a field is a plain substitution, so it can neither allocate nor reach outside its part."""
    allowed = ", ".join("{" + k + "}" for k in values)

    def bad(reason: str) -> SdenhanceError:
        return SdenhanceError(f"bad output template {template!r}: {reason}; fields: {allowed}")

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is None:
            raise bad("unmatched brace (write {{ or }} for a literal one)")
        if name not in values:
            if any(c in name for c in ":!.[ "):
                raise bad(f"`{{{name[:40]}}}` is not a plain field (no format specs)")
            raise bad(f"unknown field `{{{name[:40]}}}`")
        return safe_part(values[name])

    return _FIELD.sub(replace, template)


# --------------------------------------------------------------------------------------------
# checks before writing


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def existing_ancestor(path: Path) -> Path:
    """The nearest folder above `path` that exists (the one a write would have to create in)."""
    folder = Path(os.path.abspath(path)).parent
    while True:
        try:
            if folder.is_dir() or folder == folder.parent:
                return folder
        except OSError:
            pass
        folder = folder.parent


def output_problem(path: Path) -> str | None:
    """Why writing `path` would fail, known without writing: too long a name, a folder that
    is missing and cannot be made, or one that is read-only or out of inodes; None if fine."""
    base = existing_ancestor(path)
    name_max = _name_max(base)
    for part in Path(os.path.abspath(path)).relative_to(base).parts:
        if len(os.fsencode(part)) > name_max:
            return (
                f"the name {part[:40]}… is {len(os.fsencode(part))} bytes; "
                f"the file system allows {name_max}"
            )
    if len(os.fsencode(os.path.abspath(path))) >= 4096:
        return "the path is longer than the file system allows"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"the folder {base} is not writable"
    try:
        vfs = os.statvfs(base)
    except OSError:
        return None
    if vfs.f_files and vfs.f_favail == 0:
        return f"no free inodes left on the file system of {base}"
    if vfs.f_bavail == 0:
        return f"no free space left on the file system of {base}"
    return None


def check_output(path: Path) -> None:
    """Raise `output_problem(path)` as a user error naming the output."""
    problem = output_problem(path)
    if problem is not None:
        raise SdenhanceError(f"cannot write {path}: {problem}")


def describe_os_error(exc: OSError) -> str:
    """An OS error in words for a one-line message (`No space left on device`...)."""
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
