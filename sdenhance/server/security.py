"""Who may talk to the server and how much they may send: bind rule, token, body limit.

Plain ASGI middleware (no framework import), wrapped around the whole app, so every route is
covered, the docs and any routes a UI adds later included.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from typing import Any

from sdenhance.errors import SdenhanceError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the usual names of the local host."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Binding beyond this machine needs a token: anyone on the network could run jobs."""
    if token is not None and not token.strip():
        raise SdenhanceError("`--token` is empty; give a long random secret")
    if not is_loopback(host) and not token:
        raise SdenhanceError(
            f"`--host {host}` is reachable from other machines: set `--token` (or "
            "SDENHANCE_TOKEN) so only clients with the token can run jobs"
        )


def token_matches(header: str, token: str) -> bool:
    """`Authorization: Bearer T`, or HTTP Basic with password T (what A1111 clients send),
    compared in constant time."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode("utf-8"), token.encode("utf-8"))


async def _send_json(send: Any, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TokenAuth:
    """Refuse every HTTP request without the bearer token (401), when a token is set."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token and scope["type"] in ("http", "websocket"):
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not token_matches(header.decode("latin-1"), self.token):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await _send_json(
                    send,
                    401,
                    "missing or wrong token: send `Authorization: Bearer TOKEN`",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        await self.app(scope, receive, send)


class _TooLarge(BaseException):
    """Escapes the framework's own body-parsing error handling up to `BodyLimit`."""


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413): by Content-Length up front, and by
    counting as the body streams in, so a lying or chunked client is cut off too."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _send_json(send, 413, self._message())
            return
        seen = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, self._message())

    def _message(self) -> str:
        size = f"{self.limit / 2**20:.0f} MiB" if self.limit >= 2**20 else f"{self.limit:,} bytes"
        return f"request body over this server's limit of {size}"
