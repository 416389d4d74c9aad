"""The removal benchmark on one small case, and its section of RESULTS.md surviving a rewrite."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import harness
        import removal

        yield harness, removal
    finally:
        sys.path.remove(str(BENCH))


def test_one_case_measures_and_prints_a_table(bench) -> None:
    _, removal = bench
    case = next(c for c in removal.CASES if c.name.startswith("brick"))
    rows = removal.measure([case], (("telea", 5), ("patchmatch", 3)))
    truth, telea, patch = rows
    assert truth["method"] == "(truth)" and 0.8 < truth["texture"] < 1.3
    assert telea["texture"] < 0.4 < 0.8 < patch["texture"]  # the smear, and the texture
    assert telea["score"] > 1 > 0.5 > patch["score"]
    assert all(np.isfinite([r["mae"], r["de"], r["seconds"]]).all() for r in (telea, patch))
    text = removal.markdown(rows, [{"side": 64, "hole": 10, "telea": 0.1, "patchmatch": 0.2}], 1)
    assert "| brick r50 (texture) | 7845 | telea r5 |" in text
    assert "| patchmatch r3 |" in text and "| 64 | 10 | 0.10 | 0.20 |" in text


def test_a_marked_section_is_replaced_and_kept(bench) -> None:
    harness, _ = bench
    page = "# Results\n\nintro\n"
    once = harness.splice_section(page, "removal", "## Removal\n\nold")
    assert once.startswith(page) and once.endswith(
        "<!-- removal -->\n## Removal\n\nold\n<!-- /removal -->\n"
    )
    twice = harness.splice_section(once, "removal", "## Removal\n\nnew")
    assert twice.count("<!-- removal -->") == 1 and "new" in twice and "old" not in twice
    assert harness.marked_sections(twice) == {"removal": "## Removal\n\nnew"}
    rewritten = "# Results\n\nnew numbers\n"  # what bench/run.py writes; the section carries over
    for name, kept in harness.marked_sections(twice).items():
        rewritten = harness.splice_section(rewritten, name, kept)
    assert "new numbers" in rewritten and harness.marked_sections(rewritten) == {
        "removal": "## Removal\n\nnew"
    }
