"""The job queue: a bounded queue in front of one worker thread that owns the device.

Jobs run one at a time on one shared `Context` engine, so models load once per process and
never compete for memory. A job moves queued -> running -> done | failed | cancelled; a
running job is cancelled at its next progress step (the progress callback raises
`JobCancelled`), and since results are saved atomically nothing partial is ever written.
Finished jobs are kept (status and result path) up to `history`, oldest dropped first, so
memory stays flat however many jobs a server runs. Plain threads and no web framework: the
HTTP routes and an in-process UI use the same calls.
"""

from __future__ import annotations

import collections
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from sdenhance.errors import SdenhanceError
from sdenhance.server.job import TERMINAL, Job, JobCancelled, QueueFull, UnknownJob
from sdenhance.server.runner import run_spec, safe_label
from sdenhance.server.specs import ROLES, JobSpec, check_seed, recipe_steps, stage_steps

__all__ = ["TERMINAL", "Job", "JobCancelled", "JobQueue", "QueueFull", "UnknownJob"]

log = logging.getLogger("sdenhance")


class JobQueue:
    """Submit, watch, cancel and fetch jobs; one worker thread runs them in order.

    Parameters
    ----------
    engine_config : EngineConfig, optional
        The models every job shares (loaded on first use, so offline work loads none).
    outputs : path
        Where results are saved (`{id}-{label}.png`, full metadata).
    capacity : int
        Most jobs waiting at once; one more raises `QueueFull`.
    history : int
        Finished jobs remembered for status and results.
    max_pixels : int, optional
        Largest image any step may produce (None: the stages' own limits only).
    """

    def __init__(
        self,
        engine_config: Any = None,
        *,
        outputs: str | Path,
        capacity: int = 32,
        history: int = 256,
        max_pixels: int | None = 100_000_000,
    ) -> None:
        if capacity < 1 or history < 1:
            raise SdenhanceError("the queue needs room for at least one job and one finished job")
        self.engine_config = engine_config
        self.outputs = Path(outputs)
        self.capacity = capacity
        self.history = history
        self.max_pixels = max_pixels
        self._engine = None
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._pending: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closing = False
        self._durations: collections.deque[float] = collections.deque(maxlen=20)
        self._spool_root = Path(tempfile.mkdtemp(prefix="sdenhance-serve-"))

    # -- submitting -----------------------------------------------------------------------

    def spool_dir(self) -> Path:
        """A fresh private folder for one request's uploads; `submit` takes it over."""
        if self._closing:
            raise SdenhanceError("the server is shutting down")
        return Path(tempfile.mkdtemp(dir=self._spool_root))

    def submit(
        self,
        *,
        images: Mapping[str, bytes | str | Path | Image.Image],
        stage: str | None = None,
        options: Mapping[str, Any] | None = None,
        preset: str | None = None,
        recipe: str | None = None,
        overrides: Mapping[str, Any] | Sequence[str] | None = None,
        seed: int | None = None,
        input_name: str = "upload",
        spool: Path | None = None,
    ) -> str:
        """Validate and queue a stage (with `options`, `preset`) or a recipe (with
        `overrides`) on `images` (role -> bytes, PIL image or file); returns the job id.

        Option errors raise `SdenhanceError` here, before anything is queued. `spool`, a
        `spool_dir()` the caller wrote uploads into, is taken over: removed when the job ends,
        or at once if the job is refused."""
        spool = spool or self.spool_dir()
        try:
            if (stage is None) == (recipe is None):
                raise SdenhanceError("give either a `stage` (with `options`) or a `recipe`")
            if recipe is not None:
                if options or preset:
                    raise SdenhanceError(
                        "a recipe takes `set` overrides, not `options` or a `preset`"
                    )
                found, steps = recipe_steps(recipe, overrides)
                spec = JobSpec(steps, {}, found.name, recipe=found)
            else:
                spec = JobSpec(stage_steps(stage, options, preset=preset), {}, stage)
            spec.seed = check_seed(seed)
            spec.input_name = input_name
            spec.images = _spool_images(images, spool)
        except BaseException:
            shutil.rmtree(spool, ignore_errors=True)
            raise
        return self.submit_spec(spec, spool=spool)

    def submit_spec(self, spec: JobSpec, *, spool: Path | None = None) -> str:
        """Queue a prepared `JobSpec`; `spool` (a `spool_dir()`) is removed when it ends."""
        if "image" not in spec.images:
            _cleanup(spool)
            raise SdenhanceError("a job needs an `image`")
        job = Job(
            id=uuid.uuid4().hex,
            spec=spec,
            label=spec.label,
            kind="recipe" if spec.recipe is not None else "stage",
            warnings=list(spec.warnings),
            spool=spool,
        )
        with self._cond:
            if self._closing:
                _cleanup(spool)
                raise SdenhanceError("the server is shutting down")
            if len(self._pending) >= self.capacity:
                _cleanup(spool)
                raise QueueFull(self.capacity, self._retry_after())
            self._jobs[job.id] = job
            self._pending.append(job)
            self._ensure_worker()
            self._cond.notify_all()
        return job.id

    # -- watching -------------------------------------------------------------------------

    def status(self, job_id: str) -> dict[str, Any]:
        with self._cond:
            return self._get(job_id).snapshot()

    def jobs(self) -> list[dict[str, Any]]:
        """Every remembered job, oldest first."""
        with self._cond:
            return [job.snapshot() for job in self._jobs.values()]

    def result_path(self, job_id: str) -> Path | None:
        """The saved result of a finished job (None until it is done)."""
        with self._cond:
            return self._get(job_id).result

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends (or `timeout` seconds pass); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            job = self._get(job_id)
            while job.status not in TERMINAL:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            return job.snapshot()

    def events(self, job_id: str, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Yield the job's status at every change until it ends (or `timeout` passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = -1
        while True:
            with self._cond:
                job = self._get(job_id)
                while job.version == seen:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    self._cond.wait(left)
                seen = job.version
                snap = job.snapshot()
            yield snap
            if snap["status"] in TERMINAL:
                return

    def version(self, job_id: str) -> int:
        """A counter that grows at every change of the job (for cheap polling)."""
        with self._cond:
            return self._get(job_id).version

    def current(self) -> dict[str, Any] | None:
        """The running job's status, or None when idle."""
        with self._cond:
            return self._running.snapshot() if self._running is not None else None

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {
                "queued": len(self._pending),
                "running": int(self._running is not None),
                "capacity": self.capacity,
            }

    @property
    def engine_loaded(self) -> bool:
        return self._engine is not None

    # -- cancelling and closing -----------------------------------------------------------

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job: a queued one at once, a running one at its next step."""
        with self._cond:
            job = self._get(job_id)
            if job.status == "queued":
                self._pending.remove(job)
                self._finish(job, "cancelled")
            elif job.status == "running":
                job.cancel.set()
                self._bump(job)
            return job.snapshot()

    def cancel_running(self) -> bool:
        """Cancel whatever job is running (A1111's interrupt); False when idle."""
        with self._cond:
            job = self._running
            if job is None:
                return False
            job.cancel.set()
            self._bump(job)
            return True

    def shutdown(self) -> None:
        """Refuse new jobs and cancel queued and running ones, without waiting (safe in a
        signal handler: waiting requests and event streams then end promptly)."""
        with self._cond:
            self._closing = True
            while self._pending:
                self._finish(self._pending.popleft(), "cancelled")
            if self._running is not None:
                self._running.cancel.set()
                self._bump(self._running)
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """`shutdown`, then wait for the running job to stop and remove the spool folder."""
        self.shutdown()
        with self._cond:
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        if worker is None or not worker.is_alive():
            shutil.rmtree(self._spool_root, ignore_errors=True)

    # -- the worker -----------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="sdenhance-jobs", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                job = self._pending.popleft()
                job.status, job.started = "running", time.time()
                self._running = job
                self._bump(job)
            self._run(job)

    def _run(self, job: Job) -> None:
        from sdenhance.stages import Context

        def progress(label: str, done: int, total: int) -> None:
            if job.cancel.is_set():
                raise JobCancelled
            with self._cond:
                p = job.progress
                if label != p.label or done < p.step or done == 0:
                    p.label, p.began = label, time.monotonic()
                p.step, p.total = done, total
                self._bump(job)

        def check_cancel() -> None:
            if job.cancel.is_set():
                raise JobCancelled

        ctx = Context(engine_config=self.engine_config, seed=job.spec.seed, progress=progress)
        ctx._engine = self._engine
        began = time.monotonic()
        outcome, error, result = "failed", None, None
        try:
            result = run_spec(
                job.spec,
                ctx,
                job_id=job.id,
                outputs=self.outputs,
                max_pixels=self.max_pixels,
                check_cancel=check_cancel,
            )
            outcome = "done"
        except JobCancelled:
            outcome = "cancelled"
        except SdenhanceError as exc:
            error = str(exc)
        except Exception as exc:  # a bug or an exhausted resource: this job fails, the server lives
            log.exception("job %s failed", job.id)
            error = f"internal error ({type(exc).__name__}); the server log has the details"
        finally:
            self._engine = ctx._engine if ctx._engine is not None else self._engine
            del ctx
        with self._cond:
            job.result, job.error = result, error
            self._running = None
            if outcome == "done":
                self._durations.append(time.monotonic() - began)
            self._finish(job, outcome)

    # -- bookkeeping (callers hold the lock) ----------------------------------------------

    def _get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        return job

    def _bump(self, job: Job) -> None:
        job.version += 1
        self._cond.notify_all()

    def _finish(self, job: Job, status: str) -> None:
        job.status, job.finished = status, time.time()
        job.spec = None  # drop images and hooks: only the status is remembered
        _cleanup(job.spool)
        job.spool = None
        self._bump(job)
        finished = [j for j in self._jobs.values() if j.status in TERMINAL]
        for old in finished[: max(0, len(finished) - self.history)]:
            del self._jobs[old.id]

    def _retry_after(self) -> int:
        mean = sum(self._durations) / len(self._durations) if self._durations else 1.0
        return max(1, min(600, math.ceil(mean * max(1, len(self._pending)))))


def _spool_images(
    images: Mapping[str, bytes | str | Path | Image.Image], spool: Path
) -> dict[str, Path]:
    """Uploads as files the job can load with the CLI's loader: bytes and PIL images are
    written into the job's spool folder, paths (in-process callers only) used in place."""
    out: dict[str, Path] = {}
    for role, value in images.items():
        if role not in ROLES:
            raise SdenhanceError(f"unknown image role `{role}`; use {', '.join(ROLES)}")
        target = spool / safe_label(role)
        if isinstance(value, bytes):
            target.write_bytes(value)
        elif isinstance(value, Image.Image):
            value.save(target, format="PNG")
        else:
            target = Path(value)
        out[role] = target
    return out


def _cleanup(spool: Path | None) -> None:
    if spool is not None:
        shutil.rmtree(spool, ignore_errors=True)
