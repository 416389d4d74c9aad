"""The FastAPI app: both APIs over one job queue, behind the token and the body limit."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdenhance.errors import SdenhanceError
from sdenhance.server.jobs import JobQueue, QueueFull, UnknownJob
from sdenhance.server.security import BodyLimit, TokenAuth

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger("sdenhance")

DEFAULT_MAX_BODY = 64 * 2**20

ExtraRoutes = Iterable["APIRouter | Callable[[FastAPI], None]"]


@dataclass(frozen=True)
class ServerSettings:
    """What `sdenhance serve` decides at start; a UI builds the same to embed the server."""

    outputs: Path
    token: str | None = None
    capacity: int = 32
    history: int = 256
    max_body: int = DEFAULT_MAX_BODY
    max_pixels: int | None = 100_000_000


def create_app(
    settings: ServerSettings,
    *,
    engine_config: Any = None,
    queue: JobQueue | None = None,
    extra_routes: ExtraRoutes = (),
) -> FastAPI:
    """Build the app. Pass `queue` to share one you own (you then close it); otherwise the app
    makes one from `settings` and `engine_config` and closes it at shutdown. `extra_routes`
    are routers to include, or callables given the app (to mount static files, say); the token
    and the body limit cover them too."""
    from fastapi import APIRouter, FastAPI

    from sdenhance._version import __version__
    from sdenhance.server import a1111, routes_v1

    owned = queue is None
    if queue is None:
        queue = JobQueue(
            engine_config,
            outputs=settings.outputs,
            capacity=settings.capacity,
            history=settings.history,
            max_pixels=settings.max_pixels,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if owned:
            queue.close()

    app = FastAPI(
        title="sdenhance",
        version=__version__,
        description=(
            "Generative upscaling, inpainting and colour-true post-processing. `/api/v1` is "
            "sdenhance's own job API; `/sdapi/v1` speaks AUTOMATIC1111's API for its clients."
        ),
        lifespan=lifespan,
    )
    app.state.queue = queue
    app.state.settings = settings
    app.add_exception_handler(SdenhanceError, _user_error)
    app.include_router(routes_v1.build_router())
    app.include_router(a1111.build_router())
    for extra in extra_routes:
        if isinstance(extra, APIRouter):
            app.include_router(extra)
        else:
            extra(app)
    # outermost last: the token is checked before the body is read
    app.add_middleware(BodyLimit, limit=settings.max_body)
    app.add_middleware(TokenAuth, token=settings.token)
    return app


async def _user_error(request: Request, exc: Exception) -> JSONResponse:
    """User errors as the CLI's one line: 404 unknown job, 429 full queue, else 422."""
    from fastapi.responses import JSONResponse

    if isinstance(exc, UnknownJob):
        return JSONResponse({"detail": str(exc)}, 404)
    if isinstance(exc, QueueFull):
        return JSONResponse({"detail": str(exc)}, 429, {"Retry-After": str(exc.retry_after)})
    return JSONResponse({"detail": str(exc)}, 422)
