"""Pair each input of a batch with its mask in a folder of masks, by file stem.

`photo.png` takes the mask `photo.<ext>` or else `photo_mask.<ext>` (any image extension), the
two namings that mask folders from other tools use. Pure name matching: nothing is read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

MASK_SUFFIX = "_mask"
SHOWN = 10  # names listed in one error line before "and N more"


def pair_masks(inputs: Iterable[Path], masks: Iterable[Path]) -> dict[Path, Path | None]:
    """Each input -> its mask among `masks` (None when none matches).

    An exact stem beats `<stem>_mask`; among several extensions of one stem the name sorted
    first wins, so the pairing never depends on the order a folder lists its files.
    """
    by_stem: dict[str, Path] = {}
    for mask in sorted(masks, key=lambda p: p.name):
        by_stem.setdefault(mask.stem, mask)
    return {path: by_stem.get(path.stem) or by_stem.get(path.stem + MASK_SUFFIX) for path in inputs}


def unmasked_line(missing: list[Path]) -> str:
    """The inputs without a mask as one short line: the first few names, then a count."""
    names = ", ".join(p.name for p in missing[:SHOWN])
    more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
    return f"{len(missing)} input(s) without a mask: {names}{more}"
