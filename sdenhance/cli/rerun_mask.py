"""The mask `run --from OUT` re-runs an inpaint/remove output with: given, stored or beside OUT.

The run record names the mask and holds a digest of its pixels (and the mask itself when it
is small). A mask file found beside OUT by that name is used only when its digest matches, so
an edited mask never silently changes a re-run; `--mask` says to use another one on purpose.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sdenhance.cli.inpaint import MaskOf, _read_mask
from sdenhance.errors import SdenhanceError
from sdenhance.io.mask_record import mask_digest, stored_mask
from sdenhance.rerun import RunRecord

log = logging.getLogger("sdenhance")
MASKED_STAGES = {"inpaint", "remove"}


def rerun_mask(record: RunRecord, source: Path, given: Path | None) -> MaskOf | None:
    """Each input's mask for re-running `source` (None: its steps need no mask)."""
    if not {step.stage for step in record.steps} & MASKED_STAGES:
        if given is not None:
            raise SdenhanceError(f"`--mask`: {source} was made without a mask")
        return None
    entry: dict[str, Any] = record.mask.model_dump() if record.mask is not None else {}
    name = entry.get("name") or ""
    if given is not None:
        if not given.is_file():
            raise SdenhanceError(f"`--mask`: no such file {str(given)!r}")
        mask = _read_mask(given)
        if entry.get("sha256") and mask_digest(mask) != entry["sha256"]:
            log.warning("%s is not the mask %s was made with; pixels will differ", given, source)
        return lambda path: (mask, given.name)
    if name == "alpha":  # the input's transparent pixels were the mask: take them again
        return lambda path: (None, "alpha")
    mask = stored_mask(entry)
    if mask is None and name and Path(name).name == name and (source.parent / name).is_file():
        mask = _read_mask(source.parent / name)
        if mask_digest(mask) != entry.get("sha256"):
            raise SdenhanceError(
                f"`--from {source}`: {name} beside it is not the mask it was made with (its hash "
                f"differs); pass --mask {source.parent / name} to use it anyway"
            )
    if mask is None:
        named = f" ({name} is neither stored nor beside it)" if name else ""
        raise SdenhanceError(
            f"`--from {source}`: give the mask it was made with{named}: "
            f"sdenhance run --from {source} --mask MASK"
        )
    found = mask
    return lambda path: (found, name or "mask")
