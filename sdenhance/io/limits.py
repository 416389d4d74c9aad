"""Size and memory limits every result is checked against before the work that makes it.

Sizes come from users and files (options, `--set`, re-run records), so an output size is
refused above `MAX_OUTPUT_PIXELS` before anything is allocated, and a job whose buffers
would not fit in the memory that is free now is refused with the numbers, instead of
swapping for minutes or dying with `MemoryError` halfway.
"""

from __future__ import annotations

from sdenhance.errors import SdenhanceError

MAX_OUTPUT_PIXELS = 400_000_000
"""Largest output of any stage (20000×20000); `SDENHANCE_MAX_PIXELS` caps inputs separately."""

FREE_FRACTION = 0.9
"""Share of the free memory a job may plan to use (the rest is for the interpreter and OS)."""


def check_output_size(size: tuple[int, int], what: str = "output") -> None:
    """Refuse an output of more than `MAX_OUTPUT_PIXELS` (or a side below 1 px)."""
    width, height = size
    if width < 1 or height < 1:
        raise SdenhanceError(f"{what} {width}×{height} is empty; use a larger size")
    if width * height > MAX_OUTPUT_PIXELS:
        raise SdenhanceError(
            f"{what} {width}×{height} is over the limit of {MAX_OUTPUT_PIXELS // 1_000_000} MP; "
            "use a smaller scale"
        )


def free_memory() -> int:
    """Bytes of memory available to a new allocation now (psutil's `available`)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_free_memory(need: int, what: str, hint: str | None = None) -> None:
    """Refuse `what` when its estimated `need` (bytes) exceeds `FREE_FRACTION` of free memory."""
    free = free_memory()
    if need > FREE_FRACTION * free:
        raise SdenhanceError(
            f"{what} needs about {_bytes(need)} of memory but {_bytes(free)} is free", hint=hint
        )


def _bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
