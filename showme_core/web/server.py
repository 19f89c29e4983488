"""The HTTP server: uvicorn, with bounds on what one client may hold (``docs/operations.md``,
"Limits"; the decision is in ``docs/architecture.md``).

uvicorn bounds neither the size nor the duration of a request head: a client sending 300 MB of
headers, or one byte of them every few seconds, held the process's memory or a connection for as
long as it liked. :func:`guarded_protocol` subclasses uvicorn's httptools protocol (the one
``uvicorn[standard]`` uses) and adds exactly that, using only the parser's callbacks and the
asyncio transport:

- the head of a request (request line and headers) must arrive within ``header_timeout``, and
  counting from the connection's first byte for a new connection, so one that never speaks is
  closed too;
- it must be at most ``max_header_bytes``: the connection is answered ``431`` and closed as soon
  as more arrived, so memory holds at most one read (256 KiB) past the bound;
- a response sent before its request's body was read to the end (a refusal) closes the
  connection instead of draining a body nobody will read.

Idle keep-alive connections are uvicorn's ``timeout_keep_alive``; the body's pace and deadline
are checked in the app (:mod:`showme_core.web.limits`), where the time the app itself spends
between reads does not count against the client.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from showme_core.web.limits import too_large_head

if TYPE_CHECKING:
    from showme_core.config import Settings

log = structlog.get_logger("showme")

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 36\r\nconnection: close\r\n\r\nThe request did not arrive in time.\n"
)
_TOO_LARGE_ANSWER = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 34\r\nconnection: close\r\n\r\nThe request's headers are too big.\n"
)


def guarded_protocol(max_header_bytes: int, header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with a bounded request head (size and time)."""

    class GuardedHttpProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._awaiting_head = True
            self._head_bytes = 0
            self._head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._awaiting_head:
                self._head_bytes += len(data)
                if self._head_timer is None:
                    self._start_head_timer()  # the first byte of a keep-alive connection's next
            super().data_received(data)
            # Still no complete head past the bound: the headers alone are too large (a body
            # never counts, since the head ended before it).
            if self._awaiting_head and self._head_bytes > max_header_bytes:
                self._answer_and_close(_TOO_LARGE_ANSWER)

        def on_headers_complete(self) -> None:
            self._awaiting_head = False
            self._stop_head_timer()
            head = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if head <= max_header_bytes:
                super().on_headers_complete()
                return
            # The whole head came in one read: answer 431 through the ASGI path, as uvicorn
            # answers 503 over its concurrency limit.
            app, self.app = self.app, too_large_head
            try:
                super().on_headers_complete()
            finally:
                self.app = app

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._awaiting_head = True
            self._head_bytes = 0

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()
            if cycle is not None and cycle.more_body and not self.transport.is_closing():
                # Answered before its body was read (a refusal): do not read the rest.
                self._stop_head_timer()
                self.transport.close()

        def _start_head_timer(self) -> None:
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(header_timeout, self._head_too_slow)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self._awaiting_head or self.transport.is_closing():
                return
            if self._head_bytes:
                self._answer_and_close(_TIMEOUT_ANSWER)
            else:
                self.transport.close()  # never said a word: nobody to answer

        def _answer_and_close(self, answer: bytes) -> None:
            self._stop_head_timer()
            self._awaiting_head = False
            if not self.transport.is_closing():
                self.transport.write(answer)
                self.transport.close()

    return GuardedHttpProtocol


def serve(settings: Settings) -> None:
    """Run the service until it is stopped (``showme serve``)."""
    import uvicorn
    from prometheus_client import start_http_server

    from showme_core.app import ShowMe, create_app

    app = create_app(settings)
    showme: ShowMe = app.state.showme
    if settings.public_url is None:
        log.warning(
            "public_url is not set: caller links cannot be made and any Host is accepted; "
            "set it to the address callers reach"
        )
    if settings.metrics_listen:
        host, _, port = settings.metrics_listen.rpartition(":")
        start_http_server(
            int(port), addr=host.strip("[]") or "127.0.0.1", registry=showme.metrics.registry
        )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings.max_header_bytes, settings.header_timeout_seconds),
        timeout_keep_alive=math.ceil(settings.idle_timeout_seconds),
        limit_concurrency=settings.max_connections,
        log_config=None,
        access_log=False,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        timeout_graceful_shutdown=3,
        # Signaling messages are at most 64 KB (docs/live.md); refuse bigger frames early.
        ws_max_size=128 * 1024,
        ws_ping_interval=20,
        ws_ping_timeout=20,
    )
