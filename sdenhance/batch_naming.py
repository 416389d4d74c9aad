"""Output naming that never surprises: what `-o` means, real seeds in names, honest resumes.

`-o` is a template when it has `{...}`, a folder when it ends in `/`, is one, or has no image
suffix (created if missing), and a file when it has an image suffix, which needs a single input.
Random seeds are drawn per item before naming, so `{seed}` is the seed that ran. Every output
records a fingerprint of the settings that made it; a rerun skips an output with the same
fingerprint and refuses one made otherwise, so a resumed batch never mixes settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.io.formats import SAVE_SUFFIXES, UNWRITABLE_SUFFIXES


def output_kind(output: str | None, n_inputs: int) -> str:
    """What `-o` names: "beside" (none given), "template", "folder" or "file"; refusals here
    come before any work, each naming the fix."""
    if output is None:
        return "beside"
    if "{" in output:
        return "template"
    path = Path(output)
    if output.endswith(("/", os.sep)) or os.path.isdir(path):
        return "folder"
    suffix = path.suffix.lower()
    if suffix in UNWRITABLE_SUFFIXES:
        raise SdenhanceError(
            f"output {output}: cannot write {suffix} files; use .png, .jpg, .webp, .avif or .tif"
        )
    if suffix not in SAVE_SUFFIXES:
        if os.path.exists(path):
            raise SdenhanceError(
                f"output {output} exists and is neither a folder nor an image; "
                "give a folder, an image file name or a template"
            )
        return "folder"  # created on the first write
    if n_inputs > 1:
        folder = path.with_suffix("")
        raise SdenhanceError(
            f"-o {output} names one file but {n_inputs} inputs were given; give a folder "
            f"(-o {folder}{os.sep}) or a template (-o '{folder}_{{stem}}{path.suffix}')"
        )
    return "file"


def item_seeds(n: int, seed: int | None) -> list[int]:
    """The seed of each of `n` items: `seed` for all, or a fresh random one each."""
    if seed is not None:
        return [seed] * n
    return [random.randrange(0, 2**32) for _ in range(n)]


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short stable digest of everything that decides an output's pixels and file."""
    text = json.dumps(settings, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_existing(output: Path, wanted: str, input_sha: str | None) -> None:
    """An output that exists: fine to skip when made with these settings from this input (or
    when it records neither, as with --strip-metadata); otherwise a user error naming why."""
    from sdenhance.io.load import read_metadata

    try:
        record = read_metadata(output).sdenhance
    except SdenhanceError:
        raise SdenhanceError(
            f"{output} exists but is not a readable image; use --overwrite to replace it"
        ) from None
    if not isinstance(record, dict):
        return
    made = record.get("fingerprint")
    if made is not None and made != wanted:
        raise SdenhanceError(f"{output} exists, made with other settings; use --overwrite")
    source = record.get("input")
    recorded_sha = source.get("sha256") if isinstance(source, dict) else None
    if input_sha and recorded_sha and recorded_sha != input_sha:
        raise SdenhanceError(f"{output} exists, made from another input; use --overwrite")


def item_values(
    index: int, src: Path, op: str, suffix: str, fields: Mapping[str, Any], seeds: Sequence[int]
) -> dict[str, Any]:
    """The template fields of one item."""
    values = {"stem": src.stem, "op": op, "index": index, "ext": suffix.lstrip("."), **fields}
    if seeds:
        values["seed"] = seeds[index]
    return values
