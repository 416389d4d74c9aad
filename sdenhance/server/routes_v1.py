"""The own REST API under `/api/v1`: jobs (submit, status, events, result, cancel) and what
the server offers (presets, recipes, upscalers, schedulers, health)."""

# no `from __future__ import annotations`: FastAPI reads the route functions' annotations,
# and those name FastAPI's types, imported inside `build_router` (the web framework is an extra)

import asyncio
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from sdenhance.errors import SdenhanceError
from sdenhance.server.jobs import TERMINAL, JobQueue
from sdenhance.server.schemas import Health, JobCreated, JobStatus, NamedItem

if TYPE_CHECKING:
    from fastapi import Request, UploadFile


EVENT_POLL_S = 0.1
KEEPALIVE_S = 15.0


def queue_of(request: "Request") -> JobQueue:
    return request.app.state.queue


def finished_result(request: "Request", job_id: str) -> Any:
    """The path of a job's result file, or the JSON answer saying why there is none (409 not
    done, 410 removed)."""
    from fastapi.responses import JSONResponse

    queue = queue_of(request)
    snap = queue.status(job_id)
    path = queue.result_path(job_id)
    if path is None:
        return JSONResponse({"detail": f"job {job_id} is {snap['status']}, no result"}, 409)
    if not path.is_file():
        return JSONResponse({"detail": f"the result of job {job_id} was removed"}, 410)
    return path


def _upload_name(upload: "UploadFile") -> str:
    """The client's file name, reduced to its last component (it is only recorded)."""
    name = (upload.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:120] or "upload"


def build_router() -> Any:
    """These routes as a FastAPI router; FastAPI (the `serve` extra) is imported only here."""
    from fastapi import APIRouter, File, Form, Request, UploadFile
    from fastapi.responses import FileResponse, StreamingResponse

    router = APIRouter(prefix="/api/v1", tags=["sdenhance"])

    @router.post("/jobs", status_code=202, response_model=JobCreated)
    def submit_job(
        request: Request,
        image: Annotated[UploadFile, File(description="The input image (PNG, JPEG, WebP, TIFF).")],
        mask: Annotated[
            UploadFile | None, File(description="White = change (inpaint, remove).")
        ] = None,
        reference: Annotated[
            UploadFile | None, File(description="Colour reference (colorfix).")
        ] = None,
        original: Annotated[UploadFile | None, File(description="Original to blend over.")] = None,
        stage: Annotated[str | None, Form(description="Stage to run, e.g. `upscale`.")] = None,
        options: Annotated[str, Form(description="The stage's options as a JSON object.")] = "{}",
        preset: Annotated[str | None, Form(description="Preset name; options win over it.")] = None,
        recipe: Annotated[str | None, Form(description="Recipe name (instead of `stage`).")] = None,
        set: Annotated[list[str] | None, Form(description="Recipe overrides, KEY=VALUE.")] = None,
        seed: Annotated[int | None, Form(description="Seed in [0, 2^32); default random.")] = None,
    ) -> dict[str, Any]:
        """Queue a stage or a recipe on an uploaded image; poll, stream or fetch it by id."""
        try:
            values = json.loads(options or "{}")
        except json.JSONDecodeError as exc:
            raise SdenhanceError(f"`options` is not valid JSON ({exc.msg} at {exc.pos})") from None
        if not isinstance(values, dict):
            raise SdenhanceError("`options` must be a JSON object of option names and values")
        queue = queue_of(request)
        spool = queue.spool_dir()
        uploads = {"image": image, "mask": mask, "reference": reference, "original": original}
        try:
            paths = {}
            for role, upload in uploads.items():
                if upload is not None:
                    paths[role] = spool / role
                    with open(paths[role], "wb") as f:
                        shutil.copyfileobj(upload.file, f, 1 << 20)
        except BaseException:
            shutil.rmtree(spool, ignore_errors=True)
            raise
        job_id = queue.submit(
            images=paths,
            stage=stage,
            options=values,
            preset=preset,
            recipe=recipe,
            overrides=set or [],
            seed=seed,
            input_name=_upload_name(image),
            spool=spool,
        )
        return {"id": job_id, "status": queue.status(job_id)["status"]}

    @router.get("/jobs", response_model=list[JobStatus])
    def list_jobs(request: Request) -> list[dict[str, Any]]:
        """Every job the server remembers, oldest first."""
        return queue_of(request).jobs()

    @router.get("/jobs/{job_id}", response_model=JobStatus)
    def job_status(request: Request, job_id: str) -> dict[str, Any]:
        """Status, progress (stage, step, total, ETA) and, on failure, the one-line error."""
        return queue_of(request).status(job_id)

    @router.delete("/jobs/{job_id}", response_model=JobStatus)
    def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
        """Cancel: a queued job at once, a running one at its next step (nothing is saved)."""
        return queue_of(request).cancel(job_id)

    @router.get(
        "/jobs/{job_id}/result",
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}}}, 409: {"description": "Not done."}},
    )
    def job_result(request: Request, job_id: str) -> Any:
        """The result PNG, with its full metadata (A1111 parameters and the sdenhance record)."""
        path = finished_result(request, job_id)
        if not isinstance(path, Path):
            return path
        return FileResponse(path, media_type="image/png", filename=path.name)

    @router.get("/jobs/{job_id}/events", response_class=StreamingResponse)
    async def job_events(request: Request, job_id: str) -> StreamingResponse:
        """Server-sent events: one `progress` event per change, then `done`, `failed` or
        `cancelled`, then the stream ends."""
        queue = queue_of(request)
        queue.status(job_id)  # unknown ids are a 404 before the stream starts

        async def stream():
            seen, quiet = -1, 0.0
            while True:
                if await request.is_disconnected():
                    return
                version = queue.version(job_id)
                if version != seen:
                    seen, quiet = version, 0.0
                    snap = queue.status(job_id)
                    final = snap["status"] in TERMINAL
                    name = snap["status"] if final else "progress"
                    yield f"event: {name}\ndata: {json.dumps(snap)}\n\n"
                    if final:
                        return
                elif quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(EVENT_POLL_S)
                quiet += EVENT_POLL_S

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @router.get("/health", response_model=Health)
    def health(request: Request) -> dict[str, Any]:
        from sdenhance._version import __version__

        queue = queue_of(request)
        model = getattr(queue.engine_config, "model", None)
        return {
            "status": "ok",
            "version": __version__,
            "queue": queue.counts(),
            "model": model,
            "model_loaded": queue.engine_loaded,
        }

    @router.get("/presets", response_model=list[NamedItem])
    def presets() -> list[dict[str, Any]]:
        """Presets by name (use one with the `preset` field of a stage job)."""
        from sdenhance.presets import list_presets

        return [
            {"name": p.name, "description": p.description, "source": source, "details": p.values()}
            for p, source in list_presets()
        ]

    @router.get("/recipes", response_model=list[NamedItem])
    def recipes() -> list[dict[str, Any]]:
        """Recipes by name, with their steps and variables (set them with `set`)."""
        from sdenhance.recipes import list_recipes

        return [
            {
                "name": r.name,
                "description": r.description,
                "source": source,
                "details": {"steps": r.describe(), "vars": dict(r.vars)},
            }
            for r, source in list_recipes()
        ]

    @router.get("/upscalers", response_model=list[NamedItem])
    def upscalers() -> list[dict[str, Any]]:
        """Pre-upscalers by name (the `upscaler` option of `upscale` and `resize`)."""
        from sdenhance.io.infotext import UPSCALER_NAMES
        from sdenhance.upscalers.registry import REGISTRY

        return [
            {
                "name": info.name,
                "description": info.description,
                "details": {
                    "scale": info.scale,
                    "kind": info.kind,
                    "tile_support": info.tile_support,
                    "a1111_name": UPSCALER_NAMES.get(info.name),
                },
            }
            for info in REGISTRY
        ]

    @router.get("/schedulers", response_model=list[NamedItem])
    def schedulers() -> list[dict[str, Any]]:
        """Samplers by name (the `scheduler` option), with A1111's name for each."""
        from sdenhance.models.schedulers import SCHEDULERS

        return [
            {"name": name, "description": a1111, "details": {"a1111_name": a1111}}
            for name, (_, _, a1111) in SCHEDULERS.items()
        ]

    return router
