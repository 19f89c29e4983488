"""Per-request context: the Host check, request id, structured access log, metrics, security
headers and the body's pace.

A pure ASGI middleware, so streaming responses (the event feed) pass through untouched.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from showme_core.web.limits import BODY_METHODS, BodyPace, paced, respond
from showme_core.web.query import StrictQuery

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.config import Settings

log = structlog.get_logger("showme.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
QUIET_PATHS = {"/healthz", "/metrics"}
# A load balancer probes an instance by its own address: this answers whatever the Host says.
ANY_HOST_PATHS = {"/healthz"}

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


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The Host values requests may carry (lower case, with the port as a browser sends it), or
    None when any is accepted: nothing configured, or ``*`` listed."""
    hosts: set[str] = set()
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        default = 443 if parts.scheme == "https" else 80
        name = (parts.hostname or "").lower()
        name = f"[{name}]" if ":" in name else name
        port = parts.port or default
        hosts.add(name if port == default else f"{name}:{port}")
        hosts.add(f"{name}:{port}")
    for host in settings.allowed_hosts:
        if host.strip() == "*":
            return None
        hosts.add(host.strip().lower())
    return frozenset(hosts) or None


class RequestContext:
    def __init__(self, app: ASGIApp, showme: ShowMe) -> None:
        self.app = StrictQuery(app)
        self.showme = showme
        settings = showme.settings
        self.hosts = allowed_hosts(settings)
        self.pace = BodyPace(
            deadline=settings.body_timeout_seconds,
            grace=settings.body_grace_seconds,
            min_rate=settings.body_min_bytes_per_second,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and scope.get("method") in BODY_METHODS:
            receive = paced(receive, self.pace)
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
            if self._host_allowed(scope, headers):
                await self.app(scope, receive, send_with_headers)
            else:
                await _refuse_host(scope, send_with_headers, request_id)
        except BaseException:
            status["code"] = status["code"] or 500
            raise
        finally:
            self._finish(scope, status["code"], time.perf_counter() - started)

    def _host_allowed(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        if sum(name == b"host" for name, _value in scope.get("headers") or []) > 1:
            return False  # two Host headers: parts of the stack would read different ones
        if self.hosts is None or scope.get("path") in ANY_HOST_PATHS:
            return True
        return headers.get(b"host", b"").decode("latin-1").lower() in self.hosts

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


async def _refuse_host(scope: Scope, send: Send, request_id: str) -> None:
    """A request for another host name: links and callbacks never come from one, and a DNS
    rebinding page reaches us only this way."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps(
        {
            "error": {
                "code": "host_not_allowed",
                "message": "This host name is not served here.",
                "request_id": request_id,
            }
        }
    ).encode()
    await respond(send, 400, body, "application/json", (b"cache-control", b"no-store"))
