"""`sdenhance serve`: a local HTTP server with a job queue, the own REST API under `/api/v1`
and the AUTOMATIC1111 API subset under `/sdapi/v1`.

Needs the `serve` extra (FastAPI, uvicorn, python-multipart); only this package and the
`serve` command import it. Modules:

    jobs.py      JobQueue: bounded queue, one worker thread, cancel, progress/ETA, events
    job.py       one job's record and status snapshot; the queue's exceptions
    specs.py     requests -> validated steps; no option may name a server-side file
    runner.py    one job: load uploads with the CLI's loader, run, save with full metadata
    app.py       create_app(): both APIs, token and body-limit middleware, error mapping
    routes_v1.py /api/v1 (jobs, presets, recipes, upscalers, schedulers, health)
    a1111.py     /sdapi/v1 routes; a1111_map.py maps A1111 fields, names and scripts;
                 a1111_models.py holds A1111's request and response shapes
    security.py  loopback rule, bearer token (constant-time), request body limit

Using the queue in-process (a web UI mounted on the same app does this):

    from sdenhance.server import JobQueue, ServerSettings, create_app

    queue = JobQueue(engine_config, outputs="outputs", capacity=32)
    job = queue.submit(stage="upscale", options={"scale": 2, "creativity": 0},
                       images={"image": pil_image_or_bytes_or_path})
    job = queue.submit(recipe="old-photo", overrides={"creativity": 0.3}, images={...})
    queue.status(job)       # {"status", "progress": {"stage", "step", "total", "eta_seconds"}, ...}
    for event in queue.events(job, timeout=600): ...   # a status dict at every change
    queue.wait(job, timeout=600); queue.cancel(job); queue.result_path(job)
    app = create_app(ServerSettings(outputs=Path("outputs")), queue=queue,
                     extra_routes=[ui_router, lambda app: app.mount("/", static_files)])
    queue.close()           # cancels what is queued or running; call it when done

`submit` validates everything first (an `SdenhanceError` names the bad option) and raises
`QueueFull` when `capacity` jobs are waiting. Image roles are `image` plus `mask`, `reference`
and `original` for the stages that read them. Jobs share one engine, so models load once;
results land in `outputs` as `{job id}-{stage or recipe}.png`. Every route of the app,
`extra_routes` included, sits behind the bearer token when one is set; a browser page can
send it as `Authorization: Bearer ...` from `fetch`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["JobCancelled", "JobQueue", "QueueFull", "ServerSettings", "create_app"]


def __getattr__(name: str) -> Any:
    """The queue needs no web framework; the app (FastAPI) loads only when asked for."""
    if name in ("JobQueue", "JobCancelled", "QueueFull"):
        from sdenhance.server import jobs

        return getattr(jobs, name)
    if name in ("ServerSettings", "create_app"):
        from sdenhance.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'sdenhance.server' has no attribute {name!r}")
