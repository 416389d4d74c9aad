# ruff: noqa: T201  (a report printed to stdout is the point)
"""Run every hostile case of tests/test_hostile.py and tests/test_hostile_round2.py once as
`python -m sdenhance` and print a markdown table: case | command | exit | stderr | inputs
unchanged | no partial files.

    .venv/bin/python tools/hostile_table.py

Each case runs in its own temporary folder, offline, with tiny random-weight models built on
the spot (a few seconds) and an empty model cache and user folder. The exit status is 0 when
every case behaved as the tests expect, 1 otherwise (the problems are listed under the table).
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_hostile as h  # noqa: E402  (the cases and their checks)
import test_hostile_round2 as r2  # noqa: E402  (the second round's cases and files)

MAX_STDERR = 100


def isolate(root: Path) -> None:
    """Offline, an empty HF cache, no user config or presets: the same world as the tests."""
    os.environ.update(
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(root / "hf-cache"),
        HF_HUB_DISABLE_TELEMETRY="1",
        SDENHANCE_CONFIG=str(root / "no-config.toml"),
        SDENHANCE_HOME=str(root / "home"),
        SDENHANCE_CPU_DTYPE="fp32",
    )
    for name in (
        "SDENHANCE_MODEL",
        "SDENHANCE_CONTROLNET",
        "SDENHANCE_INPAINT_MODEL",
        "SDENHANCE_MAX_PIXELS",
    ):
        os.environ.pop(name, None)


def tiny_models(root: Path) -> dict[str, str]:
    from sdenhance import testing

    with contextlib.redirect_stderr(io.StringIO()):  # library notices and progress bars
        return {
            "sd15": str(testing.save_folder(root / "sd15", "sd15")),
            "sd15-controlnet": str(testing.save_controlnet(root / "sd15-controlnet", "sd15")),
            "sdxl-controlnet": str(testing.save_controlnet(root / "sdxl-controlnet", "sdxl")),
        }


def cell(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_STDERR:
        text = text[: MAX_STDERR - 1] + "…"
    return text.replace("|", "\\|").replace("`", "'")


def shorten(text: str, models: dict[str, str]) -> str:
    """The tiny models' temporary paths as <name> (longest first: sd15-controlnet before sd15)."""
    for name, path in sorted(models.items(), key=lambda item: -len(item[1])):
        text = text.replace(path, f"<{name}>")
    return text


def message(stderr: str, models: dict[str, str]) -> str:
    """The error line (the line that says why), else the first line; notes log records before it."""
    lines = [shorten(line, models) for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if h.ERROR.match(line)]
    if not errors:
        return cell(lines[0]) if lines else "(empty)"
    logged = sum(1 for line in lines[: lines.index(errors[0])] if h.LOG_RECORD.match(line))
    return cell(errors[0]) + (
        f" [after {logged} INFO log record{'s' * (logged > 1)}]" if logged else ""
    )


def command(case: h.Case, models: dict[str, str]) -> str:
    """The command line as typed, the tiny models' paths shortened to <name>."""
    line = shorten(shlex.join(case.argv(models)), models)
    env = " ".join(f"{k}={v}" for k, v in case.env.items())
    return f"`{env + ' ' if env else ''}sdenhance {line}`".replace("|", "\\|")


def yes_no(problems: list[str], *words: str) -> str:
    bad = [p for p in problems if any(w in p for w in words)]
    return "yes" if not bad else "NO: " + "; ".join(bad)


def run_case(case: h.Case, folder: Path, models: dict[str, str]) -> tuple[list[str], list[str]]:
    before = h.make_files(folder, case.files)
    code, stderr = h.run_subprocess(case, folder, models if case.models else None)
    problems = h.problems(case, code, stderr, before, folder)
    row = [
        case.id,
        command(case, models),
        str(code),
        message(stderr, models),
        yes_no(problems, "inputs changed", "code ran"),
        yes_no(problems, "temp files", "files written", "outputs missing"),
    ]
    return row, problems


def run_interrupt(signum: int, folder: Path) -> tuple[list[str], list[str]]:
    from sdenhance.io.load import load_image

    before = h.batch_folder(folder)
    start = time.monotonic()
    code, stderr, printed = h.interrupt_batch(folder, signum)
    seconds = time.monotonic() - start
    name = signal.Signals(signum).name
    problems = []
    if code != 130:
        problems.append(f"exit {code}, expected 130")
    if "Traceback" in stderr:
        problems.append("a traceback on stderr")
    after = h.snapshot(folder)
    if {k: after.get(k) for k in before} != before:
        problems.append("inputs changed or removed")
    written = sorted((folder / "out").glob("*"))
    broken = []
    for path in written:
        try:
            load_image(path)
        except Exception:
            broken.append(path.name)
    if broken or h.leftovers(folder):
        problems.append(f"temp files left: {h.leftovers(folder)}, incomplete outputs: {broken}")
    if not 1 <= len(written) < 6:
        problems.append(f"{len(written)} of 6 written: the signal did not land mid-batch")
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]
    row = [
        f"{name} mid-batch",
        f"`sdenhance {shlex.join(h.BATCH)}` + {name} after the 1st output",
        str(code),
        cell(" ".join(lines)) + f" [{len(written)} of 6 written, {seconds:.1f} s]",
        yes_no(problems, "inputs changed"),
        yes_no(problems, "temp files", "written"),
    ]
    return row, problems


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sdenhance-hostile-") as tmp:
        root = Path(tmp)
        isolate(root)
        h.MAKERS.update(r2.MAKERS)
        models = tiny_models(root / "models")
        rows, failures = [], []
        for i, case in enumerate([*h.CASES, *r2.CASES]):
            row, problems = run_case(case, root / f"case{i:02d}", models)
            rows.append(row)
            failures += [f"{case.id}: {p}" for p in problems]
        for signum in (signal.SIGINT, signal.SIGTERM):
            row, problems = run_interrupt(signum, root / f"signal-{signum}")
            rows.append(row)
            failures += [f"{row[0]}: {p}" for p in problems]
    header = [
        "case",
        "command",
        "exit",
        "stderr (first line)",
        "inputs unchanged",
        "no partial files",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    if failures:
        print(f"{len(failures)} problem(s):")
        for failure in failures:
            print(f"- {failure}")
        return 1
    print(f"all {len(rows)} cases behaved as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
