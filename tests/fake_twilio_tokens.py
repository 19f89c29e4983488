"""Twilio's Network Traversal Tokens endpoint on loopback, as documented: Basic auth, a form
``Ttl``, ``201`` with ``ice_servers`` (string ``ttl``, a legacy ``url`` beside ``urls``). It keeps
what it was asked and can be slowed, for the ICE provider's tests and the signaling limits'."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

USER = "dc2d2894d5a9023620c467b0e71cfa6a35457e6679785ed6ae9856fe5bdfa269"


class FakeTwilioTokens(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []  # path, form, auth and time of each request
    delay: ClassVar[float] = 0.0  # seconds before each answer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        auth = base64.b64decode(self.headers.get("Authorization", "Basic ").split()[1]).decode()
        FakeTwilioTokens.seen.append(
            {"path": self.path, "form": form, "auth": auth, "at": time.monotonic()}
        )
        time.sleep(FakeTwilioTokens.delay)
        if auth != "SKkey:secret":
            self.reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return
        self.reply(
            201,
            {
                "account_sid": "ACtest",
                "ttl": form.get("Ttl", ["86400"])[0],
                "username": USER,
                "password": "tE2Daj",
                "ice_servers": [
                    {
                        "url": "stun:global.stun.twilio.com:3478",
                        "urls": "stun:global.stun.twilio.com:3478",
                    },
                    {
                        "url": "turn:x",
                        "urls": "turn:global.turn.twilio.com:3478?transport=udp",
                        "username": USER,
                        "credential": "tE2Daj",
                    },
                    {
                        "urls": "turn:global.turn.twilio.com:443?transport=tcp",
                        "username": USER,
                        "credential": "tE2Daj",
                    },
                ],
                "date_created": "Fri, 01 May 2020 01:42:57 +0000",
            },
        )

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def twilio_tokens() -> Iterator[str]:
    """The endpoint's base URL, fresh (nothing seen, no delay); stopped afterwards."""
    FakeTwilioTokens.seen.clear()
    FakeTwilioTokens.delay = 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTwilioTokens)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
