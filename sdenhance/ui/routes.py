"""The routes the page needs beyond `/api/v1`'s job API: the option schema of each tab's
stages, and what a result holds (A1111 infotext, run record, the CLI command that remakes it).
They sit behind the server's token like every API route."""

# no `from __future__ import annotations`: FastAPI reads the route functions' annotations, and
# those name FastAPI's types, imported inside `build_router` (the web framework is an extra)
from pathlib import Path
from typing import Any

from sdenhance.server.routes_v1 import finished_result
from sdenhance.ui.command import cli_command
from sdenhance.ui.schema import page_schema

NAME_HELP = "File name the user has this image under (only its last part is used)."


def _plain_name(name: str | None) -> str | None:
    if not name:
        return None
    return name.replace("\\", "/").rsplit("/", 1)[-1][:120] or None


def build_router() -> Any:
    """The page's routes as a FastAPI router (imported here: FastAPI is the `serve` extra)."""
    from fastapi import APIRouter, Query, Request

    router = APIRouter(prefix="/api/v1", tags=["ui"])

    @router.get("/stages")
    def stages() -> dict[str, Any]:
        """The page's tabs and each stage's options: help, kind, default, bounds, choices; the
        presets' values per stage (user presets included, read at each call)."""
        return page_schema()

    @router.get("/jobs/{job_id}/info")
    def job_info(
        request: Request,
        job_id: str,
        image: str | None = Query(None, description=NAME_HELP),
        mask: str | None = Query(None, description=NAME_HELP),
        reference: str | None = Query(None, description=NAME_HELP),
        original: str | None = Query(None, description=NAME_HELP),
    ) -> Any:
        """A finished job's parameters as saved in its PNG: the A1111 infotext, the sdenhance run
        record and the `sdenhance` command line that reproduces it."""
        from sdenhance.io.load import read_metadata

        path = finished_result(request, job_id)
        if not isinstance(path, Path):
            return path
        meta = read_metadata(path)
        record = meta.sdenhance if isinstance(meta.sdenhance, dict) else {}
        names = {"image": image, "mask": mask, "reference": reference, "original": original}
        plain = {role: n for role, value in names.items() if (n := _plain_name(value))}
        return {
            "file": path.name,
            "parameters": meta.raw_parameters or "",
            "record": record,
            "command": cli_command(record, output=path.name, names=plain),
        }

    return router
