"""A fake of Vonage's SMS API and Account API on 127.0.0.1, for the plugin's tests.

It answers as the documented API does (docs/sms-vonage.md has the sources): ``POST /sms/json``
answers **HTTP 200 even when it refuses**, with the outcome in ``messages[i].status``;
``GET /account/get-balance`` answers ``{"value": ..., "autoReload": ...}`` or 401. Credentials
are accepted as form/query parameters or HTTP Basic auth, as Vonage accepts both.

Magic recipients (``magic(status)``) make it refuse with that status; ``mode`` switches the whole
server to HTTP 429, HTTP 500, an answer that is not JSON, or hanging without an answer.
``dlr()`` builds the delivery receipt Vonage would send for a message, ``signed()`` signs one.

The ``error-text`` wordings are made up in Vonage's style; only the status numbers are Vonage's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "fakekey1"
API_SECRET = "fake-api-secret-0123"
SIGNATURE_SECRET = "fake-signature-secret-4567"

# A UK range Ofcom keeps for drama: 07700 900000 to 900999. The last three digits choose.
MAGIC_PREFIX = "447700900"

ERROR_TEXTS = {
    1: "Throttled",
    2: "Missing to param",
    3: "Invalid to address",
    4: "Bad Credentials",
    5: "Internal Error",
    6: "Unroutable message - rejected",
    7: "Number barred.",
    8: "Partner account barred",
    9: "Quota Exceeded - rejected",
    10: "Too many existing binds",
    11: "Account not enabled for HTTP",
    12: "Message too long",
    14: "Invalid Signature",
    15: "Illegal Sender Address - rejected",
    29: "Non White-listed Destination - rejected",
}
# Variant 1: the same status about the sender rather than the recipient.
SENDER_TEXTS = {3: "Invalid from param"}


def magic(status: int, variant: int = 0) -> str:
    """A recipient the fake refuses with ``status``. Variant 1: the error names the sender;
    variant 2: a two-part message whose first part is accepted and second refused."""
    return f"+{MAGIC_PREFIX}{variant}{status:02d}"


@dataclass
class SentMessage:
    """One accepted ``/sms/json`` request, as the fake understood it."""

    form: dict[str, str]
    message_ids: list[str]

    @property
    def client_ref(self) -> str | None:
        return self.form.get("client-ref")


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    basic_auth: tuple[str, str] | None
    content_type: str


@dataclass
class FakeVonage:
    """The server; ``start()`` it, ``stop()`` it (the fixture does both)."""

    mode: str | None = None  # None, "401", "429", "500", "garbage", "hang", "empty"
    balance: float = 15.5359
    requests: list[Recorded] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeVonage:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------------------ receipts

    def dlr(
        self,
        message: SentMessage,
        status: str = "delivered",
        err_code: str = "0",
        part: int = 0,
    ) -> dict[str, str]:
        """The fields of the delivery receipt Vonage sends for one part of ``message``."""
        params = {
            "msisdn": message.form["to"],
            "to": message.form["from"],
            "network-code": "23410",
            "messageId": message.message_ids[part],
            "price": "0.03330000",
            "status": status,
            "scts": "2001011400",
            "err-code": err_code,
            "api-key": API_KEY,
            "message-timestamp": "2020-01-01 14:00:00",
        }
        if message.client_ref:
            params["client-ref"] = message.client_ref
        return params

    # ----------------------------------------------------------------------------- handling

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        content_type = request.headers.get("content-type", "")
        length = int(request.headers.get("content-length") or 0)
        body = request.rfile.read(length) if length else b""
        if method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode(), keep_blank_values=True))
        basic = _basic_auth(request.headers.get("authorization", ""))
        with self._lock:
            self.requests.append(Recorded(method, url.path, params, basic, content_type))
        if self.mode == "hang":
            self.release.wait(30)
            return
        if self.mode == "429":
            _answer(request, 429, {"error": "rate limited"}, {"Retry-After": "2"})
            return
        if self.mode == "401":
            _answer(
                request, 401, {"error-code": "401", "error-code-label": "authentication failed"}
            )
            return
        if self.mode == "500":
            _answer(request, 500, {"error": "internal"})
            return
        if self.mode == "garbage":
            _raw(request, 200, b"<html>maintenance</html>", "text/html")
            return
        if self.mode == "empty":
            _answer(request, 200, {"message-count": "0", "messages": []})
            return
        if method == "POST" and url.path == "/sms/json":
            self._send_sms(request, params, basic)
        elif method == "GET" and url.path == "/account/get-balance":
            self._balance(request, params, basic)
        else:
            _answer(request, 404, {"error": "not found"})

    def _authorised(self, params: dict[str, str], basic: tuple[str, str] | None) -> bool:
        given = basic or (params.get("api_key", ""), params.get("api_secret", ""))
        return hmac.compare_digest(f"{given[0]}:{given[1]}", f"{API_KEY}:{API_SECRET}")

    def _send_sms(
        self,
        request: BaseHTTPRequestHandler,
        form: dict[str, str],
        basic: tuple[str, str] | None,
    ) -> None:
        if not self._authorised(form, basic):
            _answer(request, 200, _refusal(4, ERROR_TEXTS[4]))
            return
        for name in ("from", "to", "text"):
            if not form.get(name):
                _answer(request, 200, _refusal(2, f"Missing {name} param"))
                return
        to = form["to"]
        if to.startswith("+") or not to.isdigit():
            _answer(request, 200, _refusal(3, "Invalid to address"))
            return
        if to.startswith(MAGIC_PREFIX):
            variant, status = int(to[len(MAGIC_PREFIX)]), int(to[len(MAGIC_PREFIX) + 1 :])
            text = (SENDER_TEXTS if variant == 1 else ERROR_TEXTS).get(status, "Refused")
            if variant == 2:
                first = self._accept(form, parts=1)
                message = _part(to, first.message_ids[0], self.balance)
                refused = {"status": str(status), "error-text": text}
                _answer(request, 200, {"message-count": "2", "messages": [message, refused]})
                return
            if status != 0:
                _answer(request, 200, _refusal(status, text))
                return
        unicode = form.get("type") == "unicode"
        per_part, single = (67, 70) if unicode else (153, 160)
        length = len(form["text"])
        parts = 1 if length <= single else -(-length // per_part)
        accepted = self._accept(form, parts)
        messages = [_part(to, message_id, self.balance) for message_id in accepted.message_ids]
        _answer(request, 200, {"message-count": str(parts), "messages": messages})

    def _accept(self, form: dict[str, str], parts: int) -> SentMessage:
        message = SentMessage(dict(form), [secrets.token_hex(8).upper() for _ in range(parts)])
        with self._lock:
            self.sent.append(message)
        return message

    def _balance(
        self,
        request: BaseHTTPRequestHandler,
        params: dict[str, str],
        basic: tuple[str, str] | None,
    ) -> None:
        if not self._authorised(params, basic):
            _answer(
                request, 401, {"error-code": "401", "error-code-label": "authentication failed"}
            )
            return
        _answer(request, 200, {"value": self.balance, "autoReload": False})


def signed(
    params: dict[str, str], secret: str = SIGNATURE_SECRET, method: str = "md5hash"
) -> dict[str, str]:
    """``params`` with a ``timestamp`` and the ``sig`` Vonage adds to a signed webhook.

    Written apart from the plugin's own ``signature()``, after Vonage's SDKs: sorted
    ``&key=value`` pairs, ``&`` and ``=`` in values replaced by ``_``; MD5 of that plus the
    secret, or an HMAC keyed with the secret (sent in upper case, as Vonage's .NET SDK says).
    """
    out = {key: value for key, value in params.items() if key != "sig"}
    out.setdefault("timestamp", str(int(time.time())))
    pieces = []
    for key in sorted(out):
        clean = out[key].replace("&", "_").replace("=", "_")
        pieces.append(f"&{key}={clean}")
    text = "".join(pieces)
    if method == "md5hash":
        out["sig"] = hashlib.md5((text + secret).encode()).hexdigest()  # noqa: S324
    else:
        out["sig"] = hmac.new(secret.encode(), text.encode(), method).hexdigest().upper()
    return out


def _part(to: str, message_id: str, balance: float) -> dict[str, str]:
    return {
        "to": to,
        "message-id": message_id,
        "status": "0",
        "remaining-balance": f"{balance:.8f}",
        "message-price": "0.03330000",
        "network": "23410",
    }


def _refusal(status: int, text: str) -> dict[str, Any]:
    return {"message-count": "1", "messages": [{"status": str(status), "error-text": text}]}


def _basic_auth(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _answer(
    request: BaseHTTPRequestHandler,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    _raw(request, status, json.dumps(body).encode(), "application/json", headers)


def _raw(
    request: BaseHTTPRequestHandler,
    status: int,
    data: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(data)
