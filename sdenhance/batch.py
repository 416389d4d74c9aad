"""Many inputs -> outputs: expansion, naming, skip-existing, collisions, per-item failures.

A failing item is recorded and the rest go on; existing outputs are skipped unless `overwrite`,
so a rerun resumes; an input is never an output.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.io.paths import check_output, fill_template, safe_part

log = logging.getLogger("sdenhance")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif"}
_GLOB_CHARS = set("*?[")


def expand_inputs(specs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> unique paths in the order given."""
    seen: dict[Path, None] = {}
    for spec in specs:
        text = os.fspath(spec)
        path = Path(text)
        if os.path.isdir(path):  # os.path: False, not an error, for names too long to exist
            found = _folder_images(path)
            if not found:
                raise SdenhanceError(
                    f"folder {text} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
        elif os.path.exists(path):
            found = [path]
        elif _GLOB_CHARS & set(text):
            found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
            if not found:
                raise SdenhanceError(f"no files match {text}")
        else:
            raise SdenhanceError(f"input not found: {text}")
        for p in found:
            seen.setdefault(p, None)
    return list(seen)


def _folder_images(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise SdenhanceError(f"cannot list folder {folder}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class BatchItem:
    input: Path
    output: Path
    seed: int | None = None  # drawn before naming, so `{seed}` is the seed that runs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except (OSError, ValueError):
        return False


def plan(
    inputs: Sequence[Path],
    output: str | None,
    op: str,
    *,
    fields: Mapping[str, Any] | None = None,
    suffix: str = ".png",
    seeds: Sequence[int] = (),
) -> list[BatchItem]:
    """Decide each input's output path.

    `output` is None (beside the input as `{stem}_{op}.png`), a folder (existing, ending in '/',
    or without an image suffix), a template with `{stem}`, `{op}`, `{scale}`, `{seed}`,
    `{index}`, or a file path for a single input (`batch_naming.output_kind`). `seeds` are the
    items' seeds, for `{seed}`. Two inputs that would share an output get `_2`, `_3`... in
    input order, so nothing is silently clobbered.
    """
    from sdenhance.batch_naming import item_values, output_kind

    fields = dict(fields or {})
    kind = output_kind(output, len(inputs))
    as_folder = kind == "folder"
    wanted = []
    for index, src in enumerate(inputs):
        values = item_values(index, src, op, suffix, fields, seeds)
        if output is None:
            dst = src.with_name(f"{safe_part(src.stem)}_{op}{suffix}")
        elif "{" in output:
            dst = Path(fill_template(output, values))
            if not dst.suffix:
                dst = dst.with_suffix(suffix)
        elif as_folder:
            dst = Path(output) / f"{safe_part(src.stem)}_{op}{suffix}"
        else:
            dst = Path(output)
        if "\x00" in str(dst):
            raise SdenhanceError(f"output {str(dst)!r} holds a NUL character; no file name can")
        wanted.append(dst)
    items = [
        BatchItem(src, dst, seeds[index] if seeds else None)
        for index, (src, dst) in enumerate(zip(inputs, unique_names(wanted), strict=True))
    ]
    for item in items:
        for src in inputs:
            if _same_file(src, item.output):
                raise SdenhanceError(
                    f"output {item.output} is an input file; inputs are never overwritten"
                )
    return items


def unique_names(paths: Sequence[Path]) -> list[Path]:
    """`paths` with repeats renamed `_2`, `_3`... in order; a new name never takes one that
    another input wants (or already got), so no result replaces another."""
    key = lambda p: os.path.normcase(os.path.abspath(p))  # noqa: E731
    claimed = {key(p) for p in paths}
    given: set[str] = set()
    out = []
    for path in paths:
        name, n = path, 1
        while key(name) in given or (n > 1 and key(name) in claimed):
            n += 1
            name = path.with_name(f"{path.stem}_{n}{path.suffix}")
        given.add(key(name))
        out.append(name)
    return out


@dataclass
class BatchSummary:
    done: list[BatchItem] = field(default_factory=list)
    skipped: list[BatchItem] = field(default_factory=list)
    failed: list[tuple[BatchItem, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 3 if self.failed else 0


def run_batch(
    items: Sequence[BatchItem],
    process: Callable[[BatchItem], None],
    *,
    overwrite: bool = False,
    on_item: Callable[[int, int, BatchItem], None] | None = None,
    existing: Callable[[BatchItem], None] | None = None,
) -> BatchSummary:
    """Run `process` on each item; user errors and crashes of one item don't stop the others.

    An existing output is skipped unless `overwrite`; `existing(item)` may refuse it first
    (raising, e.g. when it was made with other settings). With a single item a user error
    propagates (exit 2: bad input, nothing written). KeyboardInterrupt always propagates.
    """
    summary = BatchSummary()
    for n, item in enumerate(items):
        if on_item is not None:
            on_item(n, len(items), item)
        try:
            if os.path.exists(item.output) and not overwrite:  # False for an impossible name
                if existing is not None:
                    existing(item)
                summary.skipped.append(item)
                continue
            check_output(item.output)  # what can be known about the write comes before the work
            process(item)
        except SdenhanceError as exc:
            if len(items) == 1:
                raise
            summary.failed.append((item, str(exc)))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a crash on one file must not stop the batch
            if len(items) == 1:
                raise
            log.debug("item %s failed", item.input, exc_info=True)
            summary.failed.append((item, f"{type(exc).__name__}: {exc}"))
        else:
            summary.done.append(item)
    return summary


# ---------------------------------------------------------------------------------------------
# scale out: one share of the inputs per process

_MPI_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SdenhanceError(
            f"environment variable {name}={text!r} is not a whole number"
        ) from None


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes) of a multi-process launch, else (0, 1).

    `accelerate launch` and `torchrun` set RANK and WORLD_SIZE; an MPI launch (accelerate's
    multi-CPU mode) is read through accelerate's `PartialState` when it is installed.
    """
    world = _env_int("WORLD_SIZE")
    if world is not None:
        rank = _env_int("RANK")
        rank = _env_int("LOCAL_RANK") if rank is None else rank
        rank = 0 if rank is None else rank
    elif any(os.environ.get(name) for name in _MPI_SIZE):
        try:
            from accelerate import PartialState
        except ImportError:
            return 0, 1
        state = PartialState()
        rank, world = state.process_index, state.num_processes
    else:
        return 0, 1
    if world < 1 or not 0 <= rank < world:
        raise SdenhanceError(f"bad process rank {rank} of WORLD_SIZE={world}; check the launcher")
    return rank, world


def shard(items: Sequence[Any], rank: int | None = None, world: int | None = None) -> list[Any]:
    """This process's share of `items`: every `world`-th from `rank` (disjoint, all covered).

    Without arguments the rank and world size come from `rank_and_world()`.
    """
    if rank is None or world is None:
        rank, world = rank_and_world()
    return list(items[rank::world])
