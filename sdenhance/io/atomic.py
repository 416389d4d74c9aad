"""Atomic writes: a temp file in the target folder, fsync, rename; leftovers swept next time.

An interrupt removes the temp file itself, but a killed process (SIGKILL, power loss) cannot.
Temp files are therefore named `.sdenhance-<host>-<pid>-<random>.part`: the next write into
the same folder recognises them and removes those whose process is gone (same host, pid not
running) or that are a day old (another host, or a reused pid), so leftovers never pile up
and nobody has to guess which hidden files are safe to delete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sdenhance.errors import SdenhanceError
from sdenhance.io.paths import describe_os_error

log = logging.getLogger("sdenhance")

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
STALE_SECONDS = 24 * 3600
_TEMP = re.compile(r"^\.sdenhance-(?P<host>[0-9a-f]{6})-(?P<pid>\d{1,10})-[^/]*\.part$")
_swept: set[str] = set()


def temp_prefix() -> str:
    """The start of this process's temp file names."""
    return f".sdenhance-{HOST}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or a pid beyond the OS's range: keep, age decides)
    return True


def is_stale(path: Path, *, now: float | None = None) -> bool:
    """True for a temp file of ours whose writer is gone (see the module docstring)."""
    match = _TEMP.match(path.name)
    if match is None:
        return False
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_SECONDS:
        return True
    return match["host"] == HOST and not _pid_alive(int(match["pid"]))


def sweep_stale(folder: Path) -> list[Path]:
    """Remove stale temp files from `folder` (once per folder and process); returns them."""
    key = os.path.abspath(folder)
    if key in _swept:
        return []
    _swept.add(key)
    removed = []
    try:
        candidates = [p for p in Path(folder).iterdir() if p.name.startswith(".sdenhance-")]
    except OSError:
        return []
    for path in candidates:
        if is_stale(path):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
            log.debug("removed %s, left by an interrupted write", path)
    return removed


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temp file in the target folder, fsync, then rename over `path`; on any
    failure (interrupts included) the temp file goes and `path` is untouched. OS errors
    (read-only folder, disk full, quota, name too long) are one user error naming `path`."""
    sweep_stale(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(), suffix=".part")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(exc, OSError):
            raise SdenhanceError(f"cannot write {path}: {describe_os_error(exc)}") from None
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
