"""A fake Clickatell Platform on 127.0.0.1: the requests and answers docs/sms-clickatell.md
describes, and the status reports Clickatell would send back.

Magic recipients (the last four digits of the MSISDN):

- ``9CCC``: Clickatell refuses that message: ``202`` with ``accepted: false`` and error ``CCC``.
- ``8CCC``: a request-level error ``CCC`` (no message processed), with the HTTP status Clickatell
  uses for it (``HTTP_STATUS_FOR``; 400 otherwise).
- ``7SSS``: a bare HTTP ``SSS`` without JSON (``7429`` has ``Retry-After: 3``); ``7200`` is a 200
  whose body is not JSON, ``7202`` a 202 with no message in it; ``7000`` never answers (until the
  fake stops).

A wrong ``Authorization`` gets ``401`` with error 1 (One API shape) or, with ``flat_errors``,
error 108 in the Platform's flat shape; ``flat_errors`` switches every error to that shape.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_WORDS = {
    1: "Invalid or missing integration API key",
    2: "Account is not active",
    3: "Integration is not active",
    7: "Originating IP address is not approved in your account",
    18: "Internal error",
    19: "Internal error, please retry",
    20: "Insufficient balance",
    21: "Payload malformed",
    23: "Invalid or missing parameter",
    25: "Invalid recipient address",
    26: "Recipient opted out",
    27: "Recipient not available on channel",
    43: "Rate limit",
    44: "FROM number is suspended",
    46: "Demo access expired",
    105: "Invalid destination address",
    108: "Invalid or missing integration API Key.",
}
HTTP_STATUS_FOR = {1: 401, 7: 401, 108: 401, 20: 402, 43: 429, 18: 500, 19: 503}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeClickatell:
    api_key: str = "fake-integration-key=="
    flat_errors: bool = False
    balance: float = 12.5
    requests: list[Recorded] = field(default_factory=list)
    #: apiMessageId -> clientMessageId of every accepted message
    sent: dict[str, str | None] = field(default_factory=dict)
    url: str = ""

    def __post_init__(self) -> None:
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeClickatell:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-clickatell"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- what Clickatell sends back -------------------------------------------------------------

    def status_report(
        self,
        api_message_id: str,
        status_code: int,
        status: str,
        *,
        shape: str = "one_api",
        description: str = "",
    ) -> bytes:
        """The JSON body of a status report for an accepted message.

        ``one_api``: ``{"integrationId", "integrationName", "event": {"messageStatusUpdate":
        [...]}}``; ``platform``: the Platform REST API's flat fields.
        """
        client_message_id = self.sent.get(api_message_id)
        if shape == "one_api":
            return json.dumps(
                {
                    "integrationId": "fa8090815f05d5ed015f0b5b56080cd2",
                    "integrationName": "ShowMe",
                    "event": {
                        "messageStatusUpdate": [
                            {
                                "channel": "sms",
                                "messageId": api_message_id,
                                "clientMessageId": client_message_id,
                                "statusCode": status_code,
                                "status": status,
                                "timestamp": 1506607698000,
                            }
                        ]
                    },
                }
            ).encode()
        return json.dumps(
            {
                "integrationName": "ShowMe",
                "messageId": api_message_id,
                "requestId": uuid.uuid4().hex,
                "clientMessageId": client_message_id,
                "to": "32470000001",
                "from": "32470999999",
                "statusCode": status_code,
                "status": status,
                "statusDescription": description,
                "timestamp": 1506607698000,
            }
        ).encode()

    # -- the HTTP side --------------------------------------------------------------------------

    def _error(self, code: int) -> dict[str, Any]:
        words = ERROR_WORDS.get(code, "Error")
        if self.flat_errors:
            return {"errorCode": code, "error": words, "errorDescription": f"{words} (flat)"}
        return {"error": {"code": code, "description": words}}

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {key.lower(): value for key, value in request.headers.items()}
        self.requests.append(Recorded(method, request.path, headers, body))
        try:
            status, answer, extra = self._answer(method, request.path, headers, body)
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            request.send_response(status)
            content_type = "application/json" if not isinstance(answer, bytes) else "text/plain"
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                request.send_header(key, value)
            request.end_headers()
            request.wfile.write(data)
        except OSError:
            pass  # the client gave up (the hang test): nobody to answer

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any] | bytes, dict[str, str]]:
        if headers.get("authorization") != self.api_key:
            code = 108 if self.flat_errors else 1
            return 401, {"messages": [], **self._error(code)}, {}
        if method == "GET" and path == "/public-client/balance":
            return 200, {"balance": self.balance, "currency": "EUR"}, {}
        if method != "POST" or path != "/messages":
            return 404, {"messages": [], **self._error(41)}, {}
        if not headers.get("content-type", "").startswith("application/json") or not (
            isinstance(body, dict)
            and isinstance(body.get("content"), str)
            and isinstance(body.get("to"), list)
            and len(body["to"]) == 1
            and isinstance(body["to"][0], str)
            and body["to"][0].isdigit()
        ):
            return 400, {"messages": [], **self._error(21)}, {}
        to: str = body["to"][0]
        kind, number = to[-4], int(to[-3:])
        if kind == "7":
            if number == 0:
                self._release.wait(timeout=30)
                return 504, b"too late", {}
            if number == 200:
                return 200, b"<html>maintenance</html>", {}
            if number == 202:
                return 202, {"messages": [], "error": None}, {}
            extra = {"Retry-After": "3"} if number == 429 else {}
            return number, b"", extra
        if kind == "8":
            status = HTTP_STATUS_FOR.get(number, 400)
            extra = {"Retry-After": "3"} if status == 429 else {}
            return status, {"messages": [], **self._error(number)}, extra
        if kind == "9":
            refused = {"apiMessageId": None, "accepted": False, "to": to, **self._error(number)}
            top: dict[str, Any] = (
                {"errorCode": None, "error": None, "errorDescription": None}
                if self.flat_errors
                else {"error": None}
            )
            return 202, {"messages": [refused], **top}, {}
        api_message_id = uuid.uuid4().hex
        self.sent[api_message_id] = body.get("clientMessageId")
        accepted = {"apiMessageId": api_message_id, "accepted": True, "to": to}
        if self.flat_errors:
            accepted |= {"errorCode": None, "error": None, "errorDescription": None}
            return 202, {"messages": [accepted], "errorCode": None, "error": None}, {}
        return 202, {"messages": [accepted], "error": None}, {}
