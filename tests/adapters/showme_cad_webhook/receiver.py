"""A webhook receiver for the tests, on 127.0.0.1: it checks every delivery as a CAD would, with
the Standard Webhooks reference library (``standardwebhooks``), and can be made slow, failing or
down (its port closed, so connections are refused) and brought back on the same port."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import free_port


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and whether its signature held."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: dict[str, Any] | None
    status: int
    host: str

    @property
    def message_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    """Answers ``status`` (204 by default) after ``delay`` seconds; ``next_statuses`` are
    answered first, one per request. A request whose signature does not verify with any of
    ``secrets`` gets 401, as a CAD would answer it."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.secrets: list[str] = []
        self.status = 204
        self.delay = 0.0
        self.next_statuses: deque[int] = deque()
        self.extra_headers: dict[str, str] = {}
        self._tls = tls
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hooks/showme"

    def up(self) -> None:
        """Listen (again) on the same port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection, so that a receiver taken down refuses the next one
            # instead of serving it on a connection kept alive from before.
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.answer(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        deadline = time.monotonic() + 10
        while True:
            try:
                server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.daemon_threads = True
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        # A short poll: taking the receiver down (shutdown) waits for the loop's next turn.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.down()

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        payload: dict[str, Any] | None = None
        verified = False
        for secret in self.secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
                verified = True
                break
            except WebhookVerificationError:
                continue
        if payload is None:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
        with self._lock:
            status = self.next_statuses.popleft() if self.next_statuses else self.status
            delay = self.delay
        if not verified:
            status = 401
        if delay:
            time.sleep(delay)
        seen = Received(headers, body, verified, payload, status, headers.get("host", ""))
        with self._lock:
            self._received.append(seen)
        handler.send_response(status)
        for name, value in self.extra_headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Received]:
        """What was verified and answered with a 2xx, in arrival order."""
        return [r for r in self.received if r.verified and 200 <= r.status < 300]

    def accepted_events(self) -> list[dict[str, Any]]:
        """The events of accepted deliveries (``data`` of each body), in arrival order."""
        return [r.payload["data"] for r in self.accepted() if r.payload is not None]
