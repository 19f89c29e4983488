"""Per-request context: request id, structured access log, metrics and security headers.

A pure ASGI middleware, so streaming responses (the event feed) pass through untouched.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from showme_core.app import ShowMe

log = structlog.get_logger("showme.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
QUIET_PATHS = {"/healthz", "/metrics"}

# No inline script anywhere: every page loads its modules from this origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(self), "
    "payment=(), usb=(), interest-cohort=()",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _csp_for(scope: Scope, headers: dict[bytes, bytes]) -> str:
    """The policy, with this host's WebSocket origin spelled out in ``connect-src``: Safari
    before 16 does not count ws:/wss: as ``'self'``, and signaling needs it."""
    host = headers.get(b"host", b"").decode("latin-1")
    if not _HOST.match(host):
        return CSP
    ws = "wss" if scope.get("scheme") in ("https", "wss") else "ws"
    return CSP.replace("connect-src 'self'", f"connect-src 'self' {ws}://{host}")


_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?$")


class RequestContext:
    def __init__(self, app: ASGIApp, showme: ShowMe) -> None:
        self.app = app
        self.showme = showme

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = {"code": 0}

        csp = _csp_for(scope, headers)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                response_headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    response_headers.setdefault(name, value)
                response_headers["Content-Security-Policy"] = csp
                response_headers["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except BaseException:
            status["code"] = status["code"] or 500
            raise
        finally:
            self._finish(scope, status["code"], time.perf_counter() - started)

    def _finish(self, scope: Scope, status: int, elapsed: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "WS")
        if scope["type"] == "http":
            self.showme.metrics.http_requests.labels(method, template, f"{status // 100}xx").inc()
            if template != "/api/v1/events":
                self.showme.metrics.http_duration.labels(template).observe(elapsed)
        path = scope.get("path", "")
        level = log.debug if path in QUIET_PATHS else log.info
        # The path alone: query strings may carry things we do not want in logs.
        level(
            "request",
            method=method,
            path=path,
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 1),
        )
