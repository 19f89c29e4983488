"""One organisation at its limits (trickling uploads, holding feeds) does not slow another's
caller or dispatcher: latencies with the attacker stay within 2x of a baseline measured in the
same test without it."""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import LiveServer
from tests.pictures import jpeg, scene

PASSWORD = "a long dispatcher password"
ROUNDS = 15


class Org:
    def __init__(self, server: LiveServer, slug: str) -> None:
        server.cli("org", "create", "--slug", slug, "--name", slug, "--region", "BE")
        self.key = server.cli("apikey", "create", "--org", slug, "--name", "CAD").split()[-1]
        self.cad = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def invite(self) -> str:
        created = self.cad.post(
            "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
        )
        assert created.status_code == 201, created.text
        return str(created.json()["link"].split("#", 1)[1])


class Attack:
    """Upload bodies kept just above the minimum pace, and feeds held open: all it may."""

    def __init__(self, server: LiveServer, org: Org) -> None:
        self.server = server
        self.org = org
        self.uploads: list[socket.socket] = []
        self.feeds: list[socket.socket] = []
        self.refused_uploads = 0
        self.refused_feeds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def _connect(self) -> socket.socket:
        host, port = self.server.url.removeprefix("http://").split(":")
        return socket.create_connection((host, int(port)), timeout=10)

    def _answered(self, sock: socket.socket, wait: float) -> bytes:
        sock.settimeout(wait)
        try:
            return sock.recv(4096)
        except TimeoutError:
            return b""

    def hold_uploads(self, attempts: int) -> None:
        host = self.server.url.removeprefix("http://")
        token = ""
        for n in range(attempts):
            if n % 2 == 0:
                token = self.org.invite()  # two uploads per phone, its whole allowance
            sock = self._connect()
            sock.sendall(
                (
                    "POST /api/v1/caller/media HTTP/1.1\r\n"
                    f"Host: {host}\r\nX-ShowMe-Link: {token}\r\n"
                    "Content-Type: multipart/form-data; boundary=b0undary\r\n"
                    f"Content-Length: {20 * 1024 * 1024}\r\n\r\n"
                    "--b0undary\r\n"
                    'Content-Disposition: form-data; name="picture"; filename="p.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                + b"\xff\xd8"
            )
            if self._answered(sock, 0.3).startswith(b"HTTP/1.1 429"):
                self.refused_uploads += 1
                sock.close()
            else:
                self.uploads.append(sock)

    def hold_feeds(self, attempts: int) -> None:
        host = self.server.url.removeprefix("http://")
        for _ in range(attempts):
            sock = self._connect()
            sock.sendall(
                (
                    f"GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {self.org.key}\r\nAccept: text/event-stream\r\n\r\n"
                ).encode()
            )
            answer = self._answered(sock, 5)
            if answer.startswith(b"HTTP/1.1 429"):
                self.refused_feeds += 1
                sock.close()
            else:
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
                self.feeds.append(sock)

    def start(self) -> None:
        self._thread.start()

    def _trickle(self) -> None:
        # 2 KB a second per upload: above the 1 KB/s minimum, so the slots stay held.
        while not self._stop.wait(1.0):
            for sock in self.uploads:
                with contextlib.suppress(OSError):
                    sock.sendall(b"\x00" * 2048)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for sock in [*self.uploads, *self.feeds]:
            sock.close()


@pytest.fixture
def server(start_server: Callable[..., LiveServer]) -> LiveServer:
    # The victim measures 45 invites in a minute: more than its own default allowance.
    rate = "[[1000, 60]]"
    return start_server(
        SHOWME_INVITE_RATE_PER_SENDER=rate, SHOWME_INVITE_RATE_PER_ORGANISATION=rate
    )


@pytest.fixture
def attack(server: LiveServer) -> Iterator[Attack]:
    attacker = Attack(server, Org(server, "attacker"))
    yield attacker
    attacker.stop()
    attacker.org.cad.close()


def victim_latencies(victim: Org) -> tuple[float, float]:
    """Median seconds to create an invite, and for its caller to upload a picture."""
    invites, uploads = [], []
    picture = jpeg(scene(1024, 768))
    for _ in range(ROUNDS):
        started = time.perf_counter()
        token = victim.invite()
        invites.append(time.perf_counter() - started)
        started = time.perf_counter()
        answer = victim.cad.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": token},
            files={"picture": ("p.jpg", picture, "image/jpeg")},
        )
        uploads.append(time.perf_counter() - started)
        assert answer.status_code == 201, answer.text
    return statistics.median(invites), statistics.median(uploads)


def test_an_attacker_at_its_limits_does_not_slow_another_organisation(
    server: LiveServer, attack: Attack
) -> None:
    victim = Org(server, "victim")
    victim_latencies(victim)  # warm up: first imports, caches, connections
    invite_base, upload_base = victim_latencies(victim)

    # It tries to take every upload slot of the instance (32) and far more feeds than its share.
    attack.hold_uploads(attempts=40)
    attack.hold_feeds(attempts=20)
    attack.start()
    # It holds all it may, and no more.
    assert len(attack.uploads) == 8 and attack.refused_uploads == 32
    assert len(attack.feeds) == 8 and attack.refused_feeds == 12

    invite_attacked, upload_attacked = victim_latencies(victim)
    # Still holding all it may after the run: one more upload of its own is refused.
    attack.hold_uploads(attempts=1)
    assert attack.refused_uploads == 33 and len(attack.uploads) == 8
    # A small absolute allowance keeps millisecond medians from tripping on scheduler noise.
    assert invite_attacked <= 2 * invite_base + 0.005, (invite_base, invite_attacked)
    assert upload_attacked <= 2 * upload_base + 0.005, (upload_base, upload_attacked)
    victim.cad.close()
