"""`run --from`: the record of an output, the input it names, the dtype it was made with."""

from __future__ import annotations

from pathlib import Path

from sdenhance.errors import SdenhanceError
from sdenhance.rerun import RunRecord


def record_of(path: Path) -> RunRecord:
    """The run record of an sdenhance output, checked strictly (`sdenhance.rerun`)."""
    from sdenhance.io.load import read_metadata
    from sdenhance.rerun import parse_record

    if not path.is_file():
        raise SdenhanceError(f"`--from`: no such file {str(path)!r}; give an image sdenhance wrote")
    record = read_metadata(path).sdenhance
    if not isinstance(record, dict):
        raise SdenhanceError(
            f"`--from {path}`: no sdenhance metadata in it; only images written by sdenhance "
            "can be re-run (`sdenhance info` shows what it holds)"
        )
    return parse_record(record, path)


def recorded_input(record: RunRecord, source: Path) -> str:
    """The input named in the record, looked for beside `source` only (a bare file name)."""
    found = record.input_beside(source)
    if found is not None:
        return str(found)
    name = f" ({record.input.name} is not beside it)" if record.input is not None else ""
    raise SdenhanceError(
        f"`--from {source}`: give the original input{name}: sdenhance run --from {source} ORIGINAL"
    )


def recorded_dtype(record: RunRecord, device: str) -> str:
    """The dtype an output was made with (same dtype, same pixels), else auto; fp16 only where
    this machine runs it (a GPU output re-run on a CPU falls back to auto)."""
    from sdenhance.models.device import pick_device
    from sdenhance.rerun import DTYPES

    name = DTYPES.get(str(record.models.get("dtype", "")), "auto")
    if name == "fp16" and pick_device(device).type == "cpu":
        return "auto"
    return name
