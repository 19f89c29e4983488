"""A local fake of Twilio's Programmable Messaging API, on 127.0.0.1 and a random port.

It implements what Twilio documents for its Messages API and status callbacks, independently of
the plugin (its signature code is its own, so it is an oracle, not a mirror):

- HTTP Basic auth with the account SID and auth token, or an API key and secret; anything else
  gets ``401`` ``{"code": 20003, ...}`` with ``WWW-Authenticate``.
- ``POST /2010-04-01/Accounts/{sid}/Messages.json``: the test-credential magic numbers
  (``To=+15005550001`` 21211, ``...02`` 21612, ``...03`` 21408, ``...04`` 21610, ``...09`` 21614),
  a sender check (21606), otherwise ``201`` with an ``SM`` + 32 hex sid, status ``queued`` (or
  ``accepted`` through a Messaging Service), string-typed numbers and RFC 2822 dates.
- ``GET /2010-04-01/Accounts/{sid}.json``: the account resource.
- Switches (``fail_next``): ``429`` (20429, with ``Retry-After``), ``500``, ``garbage`` (a 201
  that is not JSON) and ``hang`` (never answers until the fake is closed).
- ``report``: posts signed status callbacks (form, ``X-Twilio-Signature``) to the
  ``StatusCallback`` a message was sent with, in the order given (out of order, twice: as told).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-0001"
API_KEY = "SK" + "fedcba9876543210" * 2
API_SECRET = "fake-api-secret-0001"
SERVICE_SID = "MG" + "00112233445566778899aabbccddeeff"
FROM_NUMBER = "+15005550006"  # the test credentials' number that "succeeds"

MAGIC = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' "
        "number: +15005550003.",
    ),
    "+15005550004": (21610, "The message From/To pair violates a blacklist rule."),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """How Twilio signs a request: written from the documented algorithm, not the plugin's."""
    data = url
    for name in sorted({name for name, _ in params}):
        for value in sorted(value for key, value in params if key == name):
            data += name + value
    mac = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def rfc2822(when: datetime) -> str:
    return email.utils.format_datetime(when)


@dataclass
class Seen:
    method: str
    path: str
    user: str | None
    password: str | None
    form: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Message:
    sid: str
    to: str
    sender: str | None
    service: str | None
    status_callback: str | None


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    numbers: tuple[str, ...] = (FROM_NUMBER,)
    services: tuple[str, ...] = (SERVICE_SID,)
    account_status: str = "active"
    seen: list[Seen] = field(default_factory=list)
    messages: dict[str, Message] = field(default_factory=dict)
    _script: deque[tuple[str, dict[str, Any]]] = field(default_factory=deque)
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            twilio = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()  # hung requests end now
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, kind: str, **options: Any) -> None:
        """Answer the next request with ``429``, ``500``, ``garbage`` or ``hang``."""
        assert kind in {"429", "500", "garbage", "hang"}
        with self._lock:
            self._script.append((kind, options))

    def next_failure(self) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    # -- status callbacks ----------------------------------------------------------------------

    def report_params(
        self, sid: str, status: str, error_code: int | None = None
    ) -> list[tuple[str, str]]:
        """The form of a status callback, as Twilio's documentation lists its fields."""
        message = self.messages[sid]
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("From", message.sender or "+15005550006"),
            ("MessageSid", sid),
            ("MessageStatus", status),
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("To", message.to),
        ]
        if message.service:
            params.append(("MessagingServiceSid", message.service))
        if error_code is not None:
            params.append(("ErrorCode", str(error_code)))
        if status == "delivered":
            params.append(("RawDlrDoneDate", datetime.now(UTC).strftime("%y%m%d%H%M")))
        return params

    def signed(self, url: str, params: list[tuple[str, str]]) -> tuple[dict[str, str], bytes]:
        """Headers and body of a callback to ``url``, signed with the auth token."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(self.auth_token, url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        return headers, urlencode(params).encode()

    def report(self, sid: str, *statuses: str | tuple[str, int]) -> list[int]:
        """POST one signed callback per status to the message's ``StatusCallback``, in order."""
        target = self.messages[sid].status_callback
        assert target, "the message was sent without a StatusCallback"
        answers = []
        with httpx.Client(timeout=10) as client:
            for status in statuses:
                name, code = status if isinstance(status, tuple) else (status, None)
                headers, body = self.signed(target, self.report_params(sid, name, code))
                answers.append(client.post(target, headers=headers, content=body).status_code)
        return answers


class _Handler(BaseHTTPRequestHandler):
    twilio: FakeTwilio
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    # -- plumbing ------------------------------------------------------------------------------

    def _record(self) -> Seen:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw, keep_blank_values=True):
            form.setdefault(name, []).append(value)
        user = password = None
        scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
        if scheme == "Basic":
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        seen = Seen(
            self.command,
            self.path,
            user,
            password,
            form,
            {k.lower(): v for k, v in self.headers.items()},
        )
        with self.twilio._lock:
            self.twilio.seen.append(seen)
        return seen

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(
        self, http: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self._reply(
            http,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": http,
            },
            headers,
        )

    def _authorised(self, seen: Seen) -> bool:
        fake = self.twilio
        pairs = {(fake.account_sid, fake.auth_token), (fake.api_key, fake.api_secret)}
        if (seen.user, seen.password) in pairs:
            return True
        self._error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        return False

    def _scripted(self) -> bool:
        failure = self.twilio.next_failure()
        if failure is None:
            return False
        kind, options = failure
        if kind == "hang":
            self.twilio._release.wait(60)
            self.close_connection = True
        elif kind == "429":
            headers = {"Retry-After": options["retry_after"]} if "retry_after" in options else {}
            self._error(429, 20429, "Too Many Requests", headers)
        elif kind == "500":
            self._reply(500, b"<html>Internal Server Error</html>")
        elif kind == "garbage":
            self._reply(201, b"<html>not json</html>")
        return True

    # -- the API -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        seen = self._record()
        if self._scripted() or not self._authorised(seen):
            return
        path = urlsplit(self.path).path
        fake = self.twilio
        if path != f"/2010-04-01/Accounts/{fake.account_sid}.json":
            self._error(404, 20404, f"The requested resource {path} was not found")
            return
        now = rfc2822(datetime.now(UTC))
        self._reply(
            200,
            {
                "sid": fake.account_sid,
                "friendly_name": "ShowMe test account",
                "status": fake.account_status,
                "type": "Full",
                "date_created": now,
                "date_updated": now,
                "owner_account_sid": fake.account_sid,
                "uri": f"/2010-04-01/Accounts/{fake.account_sid}.json",
            },
        )

    def do_POST(self) -> None:
        seen = self._record()
        if self._scripted() or not self._authorised(seen):
            return
        fake = self.twilio
        path = urlsplit(self.path).path
        if path != f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json":
            self._error(404, 20404, f"The requested resource {path} was not found")
            return
        form = {name: values[-1] for name, values in seen.form.items()}
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body = form.get("Body")
        if not to:
            self._error(400, 21604, "A 'To' phone number is required.")
            return
        if not body:
            self._error(400, 21602, "Message body is required.")
            return
        if not sender and not service:
            self._error(400, 21603, "A 'From' phone number is required.")
            return
        if service and service not in fake.services:
            self._error(404, 21705, "The Messaging Service Sid is invalid.")
            return
        if sender and sender not in fake.numbers:
            self._error(
                400,
                21606,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
            return
        if to in MAGIC:
            code, message = MAGIC[to]
            self._error(400, code, message)
            return
        sid = "SM" + secrets.token_hex(16)
        callback = form.get("StatusCallback")
        with fake._lock:
            fake.messages[sid] = Message(sid, to, sender, service, callback)
        now = rfc2822(datetime.now(UTC))
        self._reply(
            201,
            {
                "account_sid": fake.account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender,
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": "0" if service else "1",
                "price": None,
                "price_unit": None,
                "sid": sid,
                "status": "accepted" if service else "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}/Media.json"
                },
                "to": to,
                "uri": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}.json",
            },
        )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class CallbackReceiver:
    """Stands in for ShowMe's public callback URL: keeps what Twilio posts, answers 204."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
