"""Helpers shared by the server tests: images as upload bytes, an app on a fresh queue, and
bounded waits."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sdenhance.server import JobQueue, ServerSettings, create_app

TERMINAL = {"done", "failed", "cancelled"}
# a job with several progress steps that takes a second or more: a ×2 model pass over a
# 200×200 image in 192 px tiles (2×2 tiles, one progress step each)
SLOW = {"stage": "resize", "options": {"scale": 2, "upscaler": "realesr-animevideov3-x2"}}
QUICK = {"stage": "resize", "options": {"scale": 2, "upscaler": "lanczos"}}


def png_bytes(w: int = 24, h: int = 16, seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    image = Image.fromarray((rng.random((h, w, channels)) * 255).astype(np.uint8), mode)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def slow_image() -> bytes:
    return png_bytes(200, 200, seed=3)


@contextlib.contextmanager
def served(outputs: Path, *, engine_config=None, **settings):
    """A TestClient (httpx) on a fresh queue and app; the queue is closed afterwards."""
    from starlette.testclient import TestClient

    queue_args = {k: settings.pop(k) for k in ("capacity", "history") if k in settings}
    queue = JobQueue(engine_config, outputs=outputs, **queue_args)
    app = create_app(ServerSettings(outputs=outputs, **settings), queue=queue)
    try:
        with TestClient(app) as client:
            yield client, queue
    finally:
        queue.close()


def wait_http(client, job_id: str, timeout: float = 60.0, headers=None) -> dict:
    """Poll `GET /api/v1/jobs/{id}` until the job ends (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if status["status"] in TERMINAL:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {status['status']} after {timeout} s")


def wait_running(queue: JobQueue, job_id: str, timeout: float = 60.0) -> dict:
    """Block until the job is past its first progress step (bounded)."""
    for snap in queue.events(job_id, timeout=timeout):
        if snap["status"] == "running" and snap["progress"]["step"] >= 1:
            return snap
        if snap["status"] in TERMINAL:
            raise AssertionError(f"job ended before it ran: {snap}")
    raise AssertionError("job did not start in time")


def files_in(folder: Path) -> list[str]:
    """Every file in a folder, hidden temp files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_thread(app):
    """Serve `app` with uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
