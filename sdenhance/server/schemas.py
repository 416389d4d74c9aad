"""Response shapes of the own API (`/api/v1`), as they appear in `/openapi.json`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["queued", "running", "done", "failed", "cancelled"]


class JobCreated(BaseModel):
    id: str = Field(description="The job's id, for every other `/api/v1/jobs/{id}` call.")
    status: Status


class JobProgress(BaseModel):
    stage: str = Field(description="What the job is doing now (e.g. `denoise (4 tiles)`).")
    step: int
    total: int
    fraction: float = Field(description="step / total of the current stage, 0–1.")
    eta_seconds: float | None = Field(
        description="Seconds left in the current stage, from its pace so far; null until known."
    )


class JobStatus(BaseModel):
    id: str
    status: Status
    kind: Literal["stage", "recipe"]
    label: str = Field(description="The stage or recipe it runs.")
    created: float = Field(description="Unix time it was queued.")
    started: float | None
    finished: float | None
    progress: JobProgress
    error: str | None = Field(description="Why it failed: the CLI's one-line message.")
    warnings: list[str]
    cancel_requested: bool
    has_result: bool = Field(description="True once `/result` serves the PNG.")
    version: int = Field(description="Grows at every change (events carry it too).")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    queue: dict[str, int]
    model: str | None = Field(description="The configured base model (null: the default).")
    model_loaded: bool


class NamedItem(BaseModel):
    name: str
    description: str = ""
    source: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
