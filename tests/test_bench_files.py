"""The output-files benchmark on a small image: every format measured, kept vs stripped."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_files_bench_measures_every_format_and_the_cost_of_metadata():
    sys.path.insert(0, str(BENCH))
    try:
        import files
    finally:
        sys.path.remove(str(BENCH))
    rows = files.measure(side=96, repeat=1)
    kept = {r["format"]: r["kb"] for r in rows if r["metadata"] == "kept"}
    stripped = {r["format"]: r["kb"] for r in rows if r["metadata"] == "stripped"}
    assert {"png", "jpg", "webp", "tif", "png 16-bit", "tif 16-bit"} <= set(kept)
    for fmt, size in stripped.items():
        assert kept[fmt] > size  # profile, EXIF, XMP and the record take room
    table = files.markdown(rows, 96, "n/a")
    assert table.count("\n| ") == len(rows) + 1  # header and one row each
