"""The server app with the page on `/`: the static shell is public, everything else is not.

A browser cannot send a bearer header when it loads a page, so the shell (HTML, CSS and
JavaScript, no data) is served outside the token check; every call it makes to `/api/v1`
sends the token as `Authorization: Bearer` and meets the server's check like any client. The
shell's files are read once at start; a strict Content-Security-Policy lets the page reach no
host but this one.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from typing import Any

from sdenhance.server.app import ServerSettings, create_app

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


def shell_files() -> dict[str, tuple[bytes, str]]:
    """URL path -> (content, media type) for every file of the page; `/` is index.html."""
    files: dict[str, tuple[bytes, str]] = {}
    root = resources.files("sdenhance.ui") / "static"

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif not entry.name.startswith("."):
                kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind.endswith("javascript"):
                    kind += "; charset=utf-8"
                files[f"/ui/{prefix}{entry.name}"] = (entry.read_bytes(), kind)

    walk(root, "")
    files["/"] = files["/ui/index.html"]
    return files


class Shell:
    """ASGI: GET or HEAD of a shell path is answered here; all else goes to the app."""

    def __init__(self, app: Any, files: dict[str, tuple[bytes, str]]) -> None:
        self.app, self.files = app, files
        self.state = app.state  # what tests and the serve command reach for

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        found = self.files.get(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None or scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body, kind = found
        headers = [
            (b"content-type", kind.encode()),
            (b"content-length", str(len(body)).encode()),
            *HEADERS,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def create_ui_app(
    settings: ServerSettings, *, engine_config: Any = None, queue: Any = None
) -> Shell:
    """`create_app` with the page's routes, wrapped so the page itself loads without a token."""
    from sdenhance.ui.routes import build_router

    app = create_app(
        settings, engine_config=engine_config, queue=queue, extra_routes=[build_router()]
    )
    return Shell(app, shell_files())
