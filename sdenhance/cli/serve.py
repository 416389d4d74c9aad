"""`sdenhance serve`: the HTTP server (own API and AUTOMATIC1111's) over one job queue.

FastAPI and uvicorn come with the `serve` extra and are imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sdenhance.cli import common as c
from sdenhance.errors import SdenhanceError
from sdenhance.models.config import EngineConfig

app = typer.Typer()

P_SERVER = "Server"
EXTRA_HINT = "pip install 'sdenhance[serve]'"


def _check_extra() -> None:
    import importlib.util

    missing = [
        m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise SdenhanceError(
            f"`sdenhance serve` needs its `serve` extra (missing: {', '.join(missing)})",
            hint=EXTRA_HINT,
        )


Host = Annotated[
    str,
    typer.Option(
        "--host",
        help="Address to listen on. Anything but loopback (127.0.0.1, ::1, localhost) "
        "needs --token.",
        rich_help_panel=P_SERVER,
    ),
]
Port = Annotated[int, typer.Option("--port", help="TCP port, 1–65535.", rich_help_panel=P_SERVER)]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="SDENHANCE_TOKEN",
        help="Bearer token every request must send (`Authorization: Bearer T`; HTTP Basic "
        "with T as password also works). Prefer the SDENHANCE_TOKEN variable: flags show in "
        "process lists.",
        rich_help_panel=P_SERVER,
    ),
]
QueueSize = Annotated[
    int,
    typer.Option(
        "--queue",
        help="Most jobs waiting at once, ≥ 1; more are refused with 429 and Retry-After.",
        rich_help_panel=P_SERVER,
    ),
]
Outputs = Annotated[
    str | None,
    typer.Option(
        "--outputs",
        help="Folder for results (PNG with full metadata). Default: outputs/ in the user folder.",
        rich_help_panel=P_SERVER,
    ),
]
MaxRequestMb = Annotated[
    int,
    typer.Option(
        "--max-request-mb",
        help="Largest request body in MiB, ≥ 1 (uploads, base64 JSON); larger ones get 413.",
        rich_help_panel=P_SERVER,
    ),
]


@app.command("serve")
@c.engine_options("model", "controlnet", "inpaint_model")
def serve(
    host: Host = "127.0.0.1",
    port: Port = 7860,
    token: Token = None,
    queue: QueueSize = 32,
    outputs: Outputs = None,
    max_request_mb: MaxRequestMb = 64,
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
) -> None:
    """Serve the job queue over HTTP: `/api/v1` (docs at /docs) and AUTOMATIC1111's `/sdapi/v1`.

    Models load once, on the first job that needs them; one job runs at a time.

    Offline work (`creativity` 0, resize, colour) needs no diffusion model at all.
    """
    # 1. Check everything before anything starts
    c.setup_logging(verbose)
    settings = server_settings(host, port, token, queue, outputs, max_request_mb)

    # 2. Build the app and serve until Ctrl-C or SIGTERM
    from sdenhance.server.app import create_app

    web = create_app(settings, engine_config=engine)
    banner = f"sdenhance serving on {base_url(host, port)} (API docs: /docs)"
    run_server(web, host, port, verbose, f"{banner}; results in {settings.outputs}")


def server_settings(
    host: str, port: int, token: str | None, queue: int, outputs: str | None, max_request_mb: int
):
    """The server's settings from the command's options, every rule checked, the outputs
    folder made; `serve` and `ui` share them."""
    from sdenhance.server.security import check_bind

    check_bind(host, token)
    if not 1 <= port <= 65535:
        raise SdenhanceError(f"`--port` must be 1–65535; got {port}")
    if queue < 1:
        raise SdenhanceError(f"`--queue` must be ≥ 1; got {queue}")
    if max_request_mb < 1:
        raise SdenhanceError(f"`--max-request-mb` must be ≥ 1; got {max_request_mb}")
    _check_extra()
    from sdenhance.io.loaded import max_pixels_from_env
    from sdenhance.presets import home_dir
    from sdenhance.server.app import ServerSettings

    folder = Path(outputs) if outputs else home_dir() / "outputs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SdenhanceError(f"cannot create `--outputs` {folder}: {exc.strerror or exc}") from None
    return ServerSettings(
        outputs=folder,
        token=token,
        capacity=queue,
        max_body=max_request_mb * 2**20,
        max_pixels=max_pixels_from_env(),
    )


def run_server(web, host: str, port: int, verbose: bool, banner: str, on_start=None) -> None:
    """Serve `web` until Ctrl-C or SIGTERM; `on_start()` runs in a thread once it listens."""
    server = _server(web, host, port, verbose)
    c.err_console.print(banner, highlight=False)
    if on_start is not None:
        _when_started(server, on_start)
    try:
        server.run()
    except SystemExit:  # uvicorn's answer to an address it cannot bind
        raise SdenhanceError(
            f"could not listen on {host}:{port}: in use, or not an address here"
        ) from None
    c.err_console.print("stopped: queued and running jobs were cancelled, nothing partial saved")


def _when_started(server, action) -> None:
    import threading
    import time

    def wait() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        if server.started:
            action()

    threading.Thread(target=wait, name="sdenhance-started", daemon=True).start()


def base_url(host: str, port: int) -> str:
    return f"http://{_url_host(host)}:{port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _server(web, host: str, port: int, verbose: bool):
    """A uvicorn server whose first Ctrl-C or SIGTERM cancels the jobs at once, so waiting
    requests and event streams end and the shutdown is quick; exit is then 0."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            web.state.queue.shutdown()
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # a clean stop: do not re-raise the signal after

    config = uvicorn.Config(
        web,
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=30,  # longer than common polling intervals: no reset-on-reuse races
        lifespan="on",
        server_header=False,
    )
    return Server(config)
