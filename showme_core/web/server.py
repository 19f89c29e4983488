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
- a response sent before its request's body was read to the end (a refusal) ends the
  connection instead of parsing a body nobody will read. It is a lingering close, as web servers
  do it: ShowMe's side is shut at once (the client sees the whole answer, then the end), and what
  the client still sends is read and dropped until it stops for ``LINGER_IDLE`` seconds (at most
  ``idle_timeout``): closing with unread bytes would make the kernel reset the connection, and a
  phone would lose the answer (a 409 or 413 it should show) to a "connection reset".

Idle keep-alive connections are uvicorn's ``timeout_keep_alive``; the body's pace and deadline
are checked in the app (:mod:`showme_core.web.limits`), where the time the app itself spends
between reads does not count against the client.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import threading
from typing import TYPE_CHECKING, Any

import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from showme_core.web.limits import too_large_head

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from showme_core.config import Settings

log = structlog.get_logger("showme")
# Seconds without a byte from a client whose body was refused before it was closed.
LINGER_IDLE = 2.0

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
            self._lingering: asyncio.TimerHandle | None = None
            self._last_byte = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            if self._lingering is not None:
                self._lingering.cancel()
            super().connection_lost(exc)

        def eof_received(self) -> None:
            if self._lingering is not None:
                self.transport.close()  # the client is done sending too

        def data_received(self, data: bytes) -> None:
            if self._lingering is not None:
                self._last_byte = self.loop.time()  # the rest of a refused body: dropped
                return
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
            else:
                # The whole head came in one read: answer 431 through the ASGI path, as uvicorn
                # answers 503 over its concurrency limit.
                app, self.app = self.app, too_large_head
                try:
                    super().on_headers_complete()
                finally:
                    self.app = app
            cycle = self.cycle
            if cycle is not None and not cycle.response_started and not self.transport.is_closing():
                self._end_early_answers(cycle)

        def _end_early_answers(self, cycle: Any) -> None:
            """An answer that starts before its request's body is in (a refusal) says
            ``connection: close``, and the close it makes lingers (see the module's docs). The
            cycle's task has not run yet: what it looks up on itself is in place in time."""
            send = cycle.send

            async def send_ending_early(message: Any) -> None:
                if message["type"] == "http.response.start" and cycle.more_body:
                    cycle.keep_alive = False
                await send(message)

            cycle.send = send_ending_early
            cycle.transport = _LingeringClose(self, cycle)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._awaiting_head = True
            self._head_bytes = 0

        def linger(self) -> None:
            """End the connection with a lingering close: our side now, theirs when it stops."""
            if self._lingering is not None or self.transport.is_closing():
                return
            self._stop_head_timer()
            self._awaiting_head = False
            self._last_byte = self.loop.time()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self._lingering = self.loop.call_later(LINGER_IDLE, self._linger)

        def _linger(self) -> None:
            idle = self.loop.time() - self._last_byte
            if idle >= LINGER_IDLE or self.transport.is_closing():
                self.transport.close()
            else:
                self._lingering = self.loop.call_later(LINGER_IDLE - idle, self._linger)

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


# glibc's mallopt parameter for the size from which allocations are mapped, not taken from a heap.
_M_MMAP_THRESHOLD = -3
_MAPPED_FROM = 4 * 1024 * 1024


def return_pixels_to_the_system() -> bool:
    """Make decoded pictures' memory go back to the system when a picture is done.

    Pillow holds pixels in blocks of 16 MB. glibc's malloc maps such a block, but on its first
    free it raises its threshold above the block's size, so every later block comes from the
    heap of the thread that decodes, and a heap keeps its high-water mark: with two decoding
    threads, the process kept two largest pictures for ever, whatever the decoding budget said
    (measured: 519 MiB instead of 325 for 32 uploads of a 49 MP picture, ``performance.md``).
    Fixing the threshold keeps big blocks mapped, and unmapped when freed. Returns whether it
    applied (glibc only; elsewhere the allocator's own policy stays)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM))


def serve(settings: Settings) -> None:
    """Run the service until it is stopped (``showme serve``)."""
    import uvicorn

    from showme_core.app import ShowMe, create_app

    return_pixels_to_the_system()
    app = create_app(settings)
    showme: ShowMe = app.state.showme
    if settings.public_url is None:
        log.warning(
            "public_url is not set: caller links cannot be made and any Host is accepted; "
            "set it to the address callers reach"
        )
    if settings.metrics_listen:
        serve_metrics(settings, showme.metrics.registry)
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


class _LingeringClose:
    """The transport as one request's cycle sees it: closing it while the request's body is
    still arriving closes lingering (:meth:`GuardedHttpProtocol.linger`)."""

    def __init__(self, protocol: Any, cycle: Any) -> None:
        self._protocol = protocol
        self._cycle = cycle
        self._transport: asyncio.Transport = protocol.transport

    def close(self) -> None:
        if self._cycle.more_body:
            self._protocol.linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def serve_metrics(settings: Settings, registry: CollectorRegistry) -> None:
    """``/metrics`` on a listener of its own (``metrics_listen``), in a thread, behind
    ``metrics_token`` too when one is set."""
    import hmac
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(registry)
    token = settings.metrics_token

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        offered = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ").strip()
        if token and not hmac.compare_digest(offered.encode(), token.encode()):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"Metrics need 'Authorization: Bearer <metrics_token>'.\n"]
        return metrics(environ, start_response)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass  # scrapes every few seconds: not worth a log line each

    assert settings.metrics_listen is not None
    host, _, port = settings.metrics_listen.rpartition(":")
    server = make_server(host.strip("[]") or "127.0.0.1", int(port), guarded, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, name="showme-metrics", daemon=True).start()
