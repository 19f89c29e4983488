"""The HTTP layer's bounds against a real server process: oversized and slow heads, slow bodies,
idle connections, a client hanging up mid-upload (docs/operations.md, "Limits").

The limits are set small here so each case takes a second or two; the mechanism is the one the
defaults run.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.pictures import jpeg, scene

LIMITS = {
    "SHOWME_MAX_HEADER_BYTES": "16384",
    "SHOWME_HEADER_TIMEOUT_SECONDS": "2",
    "SHOWME_IDLE_TIMEOUT_SECONDS": "2",
    "SHOWME_BODY_GRACE_SECONDS": "1",
    "SHOWME_BODY_MIN_BYTES_PER_SECOND": "4096",
    "SHOWME_BODY_TIMEOUT_SECONDS": "4",
}
PASSWORD = "a long dispatcher password"


@pytest.fixture
def server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(**LIMITS)


def rss_kib(server: LiveServer) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def address(server: LiveServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


_OPEN: list[socket.socket | httpx.Client] = []


def open_socket(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(address(server), timeout=10)
    _OPEN.append(sock)
    return sock


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when that was."""
    started = time.monotonic()
    sock.settimeout(timeout)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer, time.monotonic() - started


def head(host: str, *lines: str) -> bytes:
    return ("\r\n".join([*lines, f"Host: {host}", "", ""])).encode()


def test_oversized_headers_are_cut_off_without_memory_growth(server: LiveServer) -> None:
    host = server.url.removeprefix("http://")
    before = rss_kib(server)
    for shape in ("one long header", "many headers", "a long request line"):
        sock = open_socket(server)
        if shape == "a long request line":
            sock.sendall(b"GET /healthz?" + b"a" * 1024)
            filler, line = b"a" * 65536, b""
        else:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: " + host.encode() + b"\r\n")
            filler = b"X-Filler: " + b"a" * 65526 if shape == "one long header" else b""
            line = b"X-Filler: " + b"b" * 54 + b"\r\n"
        sent = 0
        try:
            # Up to 300 MB, as the attack did; the server must stop it long before.
            while sent < 300 * 1024 * 1024:
                chunk = filler if filler else line * 1024
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer, _ = read_until_closed(sock, 10)
        sock.close()
        assert sent < 64 * 1024 * 1024, f"{shape}: the server read {sent} bytes of headers"
        if answer:  # the connection may reset before the answer is read back
            assert answer.startswith(b"HTTP/1.1 431"), (shape, answer[:100])
    after = rss_kib(server)
    assert after - before < 32 * 1024, f"RSS grew from {before} to {after} KiB"
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_head_over_the_limit_in_one_read_is_answered_431(server: LiveServer) -> None:
    host = server.url.removeprefix("http://")
    sock = open_socket(server)
    sock.sendall(head(host, "GET /healthz HTTP/1.1", "X-Filler: " + "a" * 17000))
    answer, _ = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 431")
    within = open_socket(server)
    within.sendall(
        head(host, "GET /healthz HTTP/1.1", "X-Filler: " + "a" * 8000, "Connection: close")
    )
    assert read_until_closed(within, 10)[0].startswith(b"HTTP/1.1 200")


def test_slow_and_silent_heads_are_cut_off(server: LiveServer) -> None:
    host = server.url.removeprefix("http://")
    silent = open_socket(server)
    answer, waited = read_until_closed(silent, 10)
    assert answer == b"" and 1.5 < waited < 4, waited

    slow = open_socket(server)
    started = time.monotonic()
    closed = False
    for byte in head(host, "GET /healthz HTTP/1.1"):
        try:
            slow.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        slow.settimeout(0.4)
        try:
            if slow.recv(65536).startswith(b"HTTP/1.1 408"):
                closed = True
                break
        except TimeoutError:
            continue
    assert closed, "a head sent one byte at a time was never cut off"
    assert time.monotonic() - started < 4


def test_an_idle_connection_is_closed_after_its_request(server: LiveServer) -> None:
    host = server.url.removeprefix("http://")
    sock = open_socket(server)
    sock.sendall(head(host, "GET /healthz HTTP/1.1"))
    answer, waited = read_until_closed(sock, 10)  # the answer, then nothing until the close
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1
    assert 1.5 < waited < 4, waited


class Caller:
    """An organisation, its dispatcher, and one caller link, made through the API."""

    def __init__(self, server: LiveServer, slug: str) -> None:
        server.cli("org", "create", "--slug", slug, "--name", slug, "--region", "BE")
        server.cli(
            "user",
            "create",
            *("--org", slug, "--email", f"anna@{slug}.test", "--name", "Anna"),
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        self.http = httpx.Client(base_url=server.url, headers={"Origin": server.url}, timeout=30)
        _OPEN.append(self.http)
        signed = self.http.post(
            "/api/v1/session", json={"email": f"anna@{slug}.test", "password": PASSWORD}
        )
        assert signed.status_code == 200
        created = self.http.post("/api/v1/invites", json={"phone": "+32470123456"})
        assert created.status_code == 201, created.text
        self.token = created.json()["link"].split("#", 1)[1]

    def upload(self, data: bytes) -> httpx.Response:
        return self.http.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": self.token},
            files={"picture": ("p.jpg", data, "image/jpeg")},
        )


def multipart_head(host: str, token: str, length: int) -> bytes:
    """The head of a picture upload and the start of its one part: the picture's bytes follow."""
    return head(
        host,
        "POST /api/v1/caller/media HTTP/1.1",
        f"X-ShowMe-Link: {token}",
        "Content-Type: multipart/form-data; boundary=b0undary",
        f"Content-Length: {length}",
    ) + (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="picture"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n\xff\xd8"
    )


def trickle(sock: socket.socket, every: float, size: int, until: float) -> bytes:
    """Send ``size`` bytes every ``every`` seconds until the server answers or ``until``."""
    sock.settimeout(every)
    started = time.monotonic()
    while time.monotonic() - started < until:
        try:
            sock.sendall(b"x" * size)
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            if answer := sock.recv(65536):
                return answer + read_until_closed(sock, 5)[0]
        except TimeoutError:
            continue
    return read_until_closed(sock, 5)[0]


@pytest.mark.parametrize(
    ("every", "size", "why"),
    [(0.5, 1, "a trickle below the minimum rate"), (0.25, 2048, "a body past the deadline")],
)
def test_a_slow_upload_body_is_cut_off_and_frees_its_slot(
    server: LiveServer, every: float, size: int, why: str
) -> None:
    caller = Caller(server, "north")
    host = server.url.removeprefix("http://")
    slow = [open_socket(server) for _ in range(2)]  # a phone's two upload slots, both held
    started = time.monotonic()
    for sock in slow:
        sock.sendall(multipart_head(host, caller.token, 10 * 1024 * 1024))
    answers = [trickle(sock, every, size, until=10) for sock in slow]
    elapsed = time.monotonic() - started
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), (why, answer[:200])
        assert b"request_too_slow" in answer and b"connection: close" in answer.lower()
    assert elapsed < 9, (why, elapsed)
    # Both slots are free again: the phone's next picture goes through.
    assert caller.upload(jpeg(scene(64, 48))).status_code == 201


def test_a_refused_body_is_not_read_to_its_end(server: LiveServer) -> None:
    host = server.url.removeprefix("http://")
    sock = open_socket(server)
    sock.sendall(
        head(
            host,
            "POST /api/v1/invites HTTP/1.1",
            "Content-Type: application/json",
            f"Content-Length: {50 * 1024 * 1024}",
        )
        + b'{"phone": '
    )
    answer, waited = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert waited < 2  # closed at once, not kept open for 50 MB that nobody will read


def test_a_caller_hanging_up_mid_upload_is_logged_as_such(server: LiveServer) -> None:
    caller = Caller(server, "north")
    host = server.url.removeprefix("http://")
    sock = open_socket(server)
    sock.sendall(multipart_head(host, caller.token, 1024 * 1024) + b"x" * 20000)
    sock.close()  # the phone's network drops in the middle of the picture

    def logged() -> list[dict[str, Any]]:
        import json

        lines = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
        return [line for line in lines if line.get("path") == "/api/v1/caller/media"]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not logged():
        time.sleep(0.05)
    entries = logged()
    assert entries and entries[-1]["status"] == 499, entries
    text = server.log_text()
    assert "client disconnected" in text
    assert "Exception in ASGI application" not in text and '"status": 500' not in text


def test_requests_keep_working_on_a_healthy_connection(server: LiveServer) -> None:
    """Keep-alive still works: the bounds apply per request, not per connection."""
    with httpx.Client(base_url=server.url) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200


def test_an_early_refusal_reaches_a_client_still_sending(server: LiveServer) -> None:
    """Refused before its body is read (a dead link, another phone, too large), the upload
    still gets its answer: the server lingers, reading and dropping the rest, instead of
    closing with unread bytes, which would reset the connection under the answer."""
    big = b"\xff\xd8" + bytes(8 * 1024 * 1024)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(5):
            answer = client.post(
                "/api/v1/caller/media",
                headers={"X-ShowMe-Link": "x" * 24},
                files={"picture": ("p.jpg", big, "image/jpeg")},
            )
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] == "invalid_link"
