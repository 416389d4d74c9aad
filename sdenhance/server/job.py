"""One job's record: its state, progress and ETA, and the errors the queue raises."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdenhance.errors import SdenhanceError
from sdenhance.server.specs import JobSpec

TERMINAL = frozenset({"done", "failed", "cancelled"})


class JobCancelled(BaseException):
    """Raised inside a running job at its next step once it is cancelled.

    A BaseException, like KeyboardInterrupt, so no `except Exception` in a stage swallows it.
    """


class QueueFull(SdenhanceError):
    """The queue holds its maximum of waiting jobs; `retry_after` is a guess in seconds."""

    def __init__(self, capacity: int, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the queue is full ({capacity} jobs waiting); retry in {retry_after} s")


class UnknownJob(SdenhanceError):
    """No job with this id (never existed, or dropped from the history)."""


@dataclass
class Progress:
    """Where a running job is: the current step's label, its done/total, when it began."""

    label: str = ""
    step: int = 0
    total: int = 0
    began: float = 0.0

    def eta(self, now: float) -> float | None:
        """Seconds left in the current step, from its pace so far (None before a step ends)."""
        if self.total and self.step >= self.total:
            return 0.0
        if self.step <= 0 or not self.total:
            return None
        return (now - self.began) * (self.total - self.step) / self.step


@dataclass(eq=False)
class Job:
    id: str
    spec: JobSpec | None
    label: str
    kind: str  # "stage" or "recipe"
    created: float = field(default_factory=time.time)
    status: str = "queued"
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: Path | None = None
    progress: Progress = field(default_factory=Progress)
    cancel: threading.Event = field(default_factory=threading.Event)
    warnings: list[str] = field(default_factory=list)
    spool: Path | None = None
    version: int = 0

    def snapshot(self) -> dict[str, Any]:
        """The job's status as plain data (what `GET /api/v1/jobs/{id}` returns)."""
        now = time.monotonic()
        p = self.progress
        eta = p.eta(now) if self.status == "running" else None
        return {
            "id": self.id,
            "status": self.status,
            "kind": self.kind,
            "label": self.label,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "progress": {
                "stage": p.label,
                "step": p.step,
                "total": p.total,
                "fraction": round(p.step / p.total, 4) if p.total else 0.0,
                "eta_seconds": None if eta is None else round(eta, 2),
            },
            "error": self.error,
            "warnings": list(self.warnings),
            "cancel_requested": self.cancel.is_set() and self.status not in TERMINAL,
            "has_result": self.result is not None,
            "version": self.version,
        }
