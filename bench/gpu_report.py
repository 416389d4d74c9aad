"""The report of bench/gpu.py: markdown tables rewritten after every row, and the time budget."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import fmt, table


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        parts += [table(self.header, self.rows) if self.rows else "_(no rows yet)_", ""]
        parts += [p for n in self.notes for p in (n, "")]
        return "\n".join(parts)


class Report:
    """The tables of one run, saved (atomically) to `path` after every change."""

    def __init__(self, path: Path | None, title: str) -> None:
        self.path = path
        self.title = title
        self.intro: list[str] = []
        self.machine: list[tuple[str, str]] = []
        self.tables: list[Table] = []
        self.footer: list[str] = []

    def table(self, title: str, header: list[str]) -> Table:
        self.tables.append(Table(title, header))
        print(f"[gpu] {title}", flush=True)
        self.save()
        return self.tables[-1]

    def add(self, t: Table, row: list[Any]) -> None:
        row = (list(row) + [None] * len(t.header))[: len(t.header)]
        t.rows.append(row)
        print("[gpu]   " + " | ".join(fmt(v) for v in row), flush=True)
        self.save()

    def note(self, t: Table, text: str) -> None:
        t.notes.append(text)
        self.save()

    def markdown(self) -> str:
        parts = [f"# {self.title}", ""]
        parts += [p for n in self.intro for p in (n, "")]
        if self.machine:
            parts += [table(["", ""], self.machine), ""]
        parts += [t.markdown() for t in self.tables]
        parts += [p for n in self.footer for p in (n, "")]
        return "\n".join(parts).rstrip() + "\n"

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(self.markdown())
        os.replace(tmp, self.path)


class Budget:
    """Seconds left of `--time-budget`, counted from `started` (the process start when run)."""

    def __init__(self, seconds: float, started: float | None = None) -> None:
        self.seconds = seconds
        self.started = time.time() if started is None else started

    def used(self) -> float:
        return time.time() - self.started

    def left(self) -> float:
        return self.seconds - self.used()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"
