"""`sdenhance ui`: `serve` with a web page on `/` to paint masks, run every tool, compare
before and after. The page is plain HTML, CSS and JavaScript shipped with the package (see
`sdenhance.ui`); it needs no more than the `serve` extra.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sdenhance.cli import common as c
from sdenhance.cli.serve import (
    P_SERVER,
    Host,
    MaxRequestMb,
    Outputs,
    Port,
    QueueSize,
    Token,
    base_url,
    run_server,
    server_settings,
)
from sdenhance.models.config import EngineConfig

app = typer.Typer()


@app.command("ui")
@c.engine_options("model", "controlnet", "inpaint_model")
def ui(
    host: Host = "127.0.0.1",
    port: Port = 7860,
    token: Token = None,
    queue: QueueSize = 32,
    outputs: Outputs = None,
    max_request_mb: MaxRequestMb = 64,
    no_browser: Annotated[
        bool,
        typer.Option(
            "--no-browser",
            help="Do not open the page in a browser (print its address only).",
            rich_help_panel=P_SERVER,
        ),
    ] = False,
    verbose: c.Verbose = False,
    engine: EngineConfig | None = None,
) -> None:
    """Open the web UI: upscale, inpaint and remove with a mask brush, face fix, colour fix and
    blend, with progress, a before/after slider and this session's history.

    The same server as `serve` (its API stays on /api/v1 and /sdapi/v1), with the page on /.
    With --token the page asks for the token once (or takes it from the address:
    http://HOST:PORT/#token=T) and sends it with every request. Nothing is fetched from the
    internet.
    """
    # 1. Check everything before anything starts (the same rules as `serve`)
    c.setup_logging(verbose)
    settings = server_settings(host, port, token, queue, outputs, max_request_mb)

    # 2. Build the app with the page, serve it, open the browser once it listens
    from sdenhance.ui.app import create_ui_app

    web = create_ui_app(settings, engine_config=engine)
    url = base_url(host if host not in ("0.0.0.0", "::") else "127.0.0.1", port) + "/"
    banner = f"sdenhance UI on {url} (API docs: /docs); results in {settings.outputs}"
    if token:
        banner += "; the page asks for the token (or open it with #token=T at the end)"

    def open_page() -> None:
        import webbrowser

        webbrowser.open(url + (f"#token={token}" if token else ""))

    run_server(web, host, port, verbose, banner, on_start=None if no_browser else open_page)
