"""The harness for untrusted input: only `SdenhanceError`, within a time and a memory bound.

`bounded(call, *args)` runs one case and fails it when it raises anything but a one-line
`SdenhanceError`, runs for `seconds` or more (a SIGALRM stops it, so a hang fails instead of
blocking the suite), or allocates more than `megabytes` at its peak (tracemalloc: Python and
numpy allocations, measured in a second run). The bounds are guards against hangs and blow-ups, not speed targets: the
cases they guard run in milliseconds.
"""

from __future__ import annotations

import signal
import time
import tracemalloc
import warnings
from contextlib import contextmanager
from typing import Any

from sdenhance.errors import SdenhanceError

# a few tenths of a second at most on an idle machine; the margin is for a machine busy with
# other work (the blow-ups guarded against, quadratic parses of 256K characters, take minutes)
SECONDS = 3.0
MEGABYTES = 64


@contextmanager
def time_limit(seconds: float = SECONDS):
    """Fail (never hang) when the body runs `seconds` or longer."""

    def expired(signum, frame):
        raise TimeoutError(f"took {seconds} s or more")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - start < seconds


def _run(call, args, seconds: float) -> Any:
    with time_limit(seconds), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's corrupt-EXIF notes: not what is tested
        try:
            return call(*args)
        except SdenhanceError as exc:
            assert str(exc).strip(), "an empty error message"
            assert "\n" not in str(exc), f"a multi-line error message: {exc!s}"
            return exc


def bounded(call, *args: Any, seconds: float = SECONDS, megabytes: float | None = MEGABYTES) -> Any:
    """`call(*args)`; a one-line `SdenhanceError` is returned, anything else fails the test.

    The call runs once under the time limit, then (unless `megabytes` is None) once more
    under tracemalloc, which slows Python code about tenfold, with ten times the time limit:
    so the same call must be repeatable.
    """
    result = _run(call, args, seconds)
    if megabytes is None:
        return result
    tracemalloc.start()
    try:
        _run(call, args, 10 * seconds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < megabytes * 2**20, f"peak allocation {peak / 2**20:.0f} MB"
    return result
