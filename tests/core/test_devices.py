"""One phone per link (docs/live.md, "One phone per link"): the first phone holds the invite in the
store; another one waits, cannot send a picture or take a seat, and the console is asked; a resend
closes the old link's sockets and forgets the phone, so the real caller's new link works."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from showme_core.app import ShowMe
from showme_core.devices import fingerprint, holds
from showme_core.store.schema import audit_records, invites
from showme_core.testing import Tenant
from tests import pictures
from tests.conftest import LiveServer
from tests.live_signaling import Psap, caller, closed_psaps, console, receive, refused

REAL = "real-phone-0001"
OTHER = "other-phone-0002"


@pytest.fixture
def live(start_server: Callable[..., LiveServer]) -> Iterator[LiveServer]:
    server: LiveServer = start_server()
    yield server
    closed_psaps()


def phone_headers(token: str, device: str | None) -> dict[str, str]:
    headers = {"X-ShowMe-Link": token}
    if device is not None:
        headers["X-ShowMe-Device"] = device
    return headers


async def open_link(http: httpx.AsyncClient, token: str, device: str | None) -> Any:
    answer = await http.post("/api/v1/caller/open", headers=phone_headers(token, device))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def upload(
    server: LiveServer, token: str, device: str | None, kind: str = "picture"
) -> tuple[int, Any]:
    """Send a picture as a careful client does (``Expect: 100-continue``): a refusal answered
    before the body is read arrives whole, without racing the connection's close."""
    return await asyncio.to_thread(_upload, server, phone_headers(token, device), kind)


def _upload(server: LiveServer, headers: dict[str, str], kind: str) -> tuple[int, Any]:
    request = httpx.Request(
        "POST",
        f"{server.url}/api/v1/caller/media",
        headers=headers,
        files={"picture": ("picture.jpg", pictures.jpeg(), "image/jpeg")},
        data={} if kind == "picture" else {"kind": kind},
    )
    body = request.read()
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    head = [
        "POST /api/v1/caller/media HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Type: {request.headers['content-type']}",
        f"Content-Length: {len(body)}",
        "Expect: 100-continue",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        answer = _read_head(sock)
        if answer.startswith(b"HTTP/1.1 100"):
            sock.sendall(body)
            answer = answer.split(b"\r\n\r\n", 1)[1]
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.split(b"\r\n\r\n", 1)[1])


def _read_head(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def holder_in_store(server: LiveServer, invite_id: str) -> str | None:
    with sqlite3.connect(server.data_dir / "showme.db") as db:
        row = db.execute("SELECT device_hash FROM invites WHERE id = ?", (invite_id,)).fetchone()
    found: str | None = row[0]
    return found


async def test_an_ignored_phone_cannot_upload_or_take_a_seat(
    live: LiveServer, start_server: Callable[..., LiveServer]
) -> None:
    north = Psap(live, "north")
    invite_id, token = north.invite(send_sms=False)
    desk = await console(north, invite_id)
    assert (await receive(desk))["type"] == "welcome"
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        assert (await open_link(http, token, REAL))["device"] == "holder"
        assert (await open_link(http, token, OTHER))["device"] == "waiting"
        assert await receive(desk) == {
            "type": "device-request",
            "device": fingerprint(OTHER, invite_id),
        }

        # The dispatcher ignores it: its pictures, stills and snapshots are refused, and so is
        # a request without a device id now that the link is held.
        for device, kind in [
            (OTHER, "picture"),
            (OTHER, "still"),
            (OTHER, "snapshot"),
            (None, "still"),
        ]:
            status, refusal = await upload(live, token, device, kind)
            assert status == 409, refusal
            assert refusal["error"]["code"] == "another_device"
            assert "another phone" in refusal["error"]["message"]
        assert await refused(await caller(live, token, OTHER)) == ("another_device", 4409)
        with pytest.raises(TimeoutError):
            await receive(desk, timeout=0.5)  # asked once, not at every knock

        status, sent = await upload(live, token, REAL, "still")
        assert status == 201, sent
        listed = north.http.get(f"/api/v1/invites/{invite_id}/media").json()["items"]
        assert [item["id"] for item in listed] == [sent["media"]["id"]]
        assert holder_in_store(live, invite_id) == fingerprint(REAL, invite_id)

    # Another instance on the same store knows the holder too (it is not in a room's memory).
    other = start_server(SHOWME_DATA_DIR=str(live.data_dir))
    assert (await upload(other, token, OTHER))[0] == 409
    assert (await upload(other, token, REAL))[0] == 201
    assert await refused(await caller(other, token, OTHER)) == ("another_device", 4409)
    await desk.close()


async def test_a_resend_evicts_the_old_links_sockets_and_forgets_the_phone(
    live: LiveServer,
) -> None:
    north = Psap(live, "north")
    invite_id, old_token = north.invite()
    desk = await console(north, invite_id)
    assert (await receive(desk))["type"] == "welcome"
    # Something took the seat with the link without opening it (so it can still be resent).
    squatter = await caller(live, old_token, OTHER)
    assert (await receive(squatter))["type"] == "welcome"
    assert await receive(desk) == {"type": "peer", "present": True}
    assert holder_in_store(live, invite_id) == fingerprint(OTHER, invite_id)

    resent = north.http.post(f"/api/v1/invites/{invite_id}/resend")
    assert resent.status_code == 201, resent.text
    new_token = resent.json()["link"].split("#", 1)[1]
    # At once, not at its next message: the old link's socket is closed and the phone forgotten.
    assert await refused(squatter) == ("link_replaced", 4401)
    assert await receive(desk) == {"type": "peer", "present": False}
    assert holder_in_store(live, invite_id) is None
    assert await refused(await caller(live, old_token, OTHER)) == ("invalid_link", 4401)

    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        assert (await upload(live, old_token, OTHER))[0] == 401
        assert (await open_link(http, new_token, REAL))["device"] == "holder"
        phone = await caller(live, new_token, REAL)
        assert (await receive(phone))["type"] == "welcome"
        assert await receive(desk) == {"type": "peer", "present": True}
        assert (await upload(live, new_token, REAL))[0] == 201
    assert holder_in_store(live, invite_id) == fingerprint(REAL, invite_id)
    await phone.close()
    await desk.close()


async def new_invite(tenant: Tenant) -> tuple[str, str]:
    answer = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.json()["link"].split("#", 1)[1]


async def test_racing_phones_make_one_holder(showme: ShowMe, tenant: Tenant) -> None:
    invite_id, _token = await new_invite(tenant)
    org = tenant.org.id
    # Without a device id a request passes while nobody holds the link, and claims nothing.
    assert await holds(showme, org, invite_id, None)
    phones = [fingerprint(f"racing-phone-{i:04d}", invite_id) for i in range(8)]
    answers = await asyncio.gather(*(holds(showme, org, invite_id, p) for p in phones))
    assert answers.count(True) == 1
    winner = phones[answers.index(True)]
    async with showme.db.read() as db:
        held = await db.scalar(select(invites.c.device_hash).where(invites.c.id == invite_id))
        claims = await db.scalar(
            select(func.count()).where(
                audit_records.c.subject == invite_id,
                audit_records.c.action == "invite.device_claimed",
            )
        )
    assert held == winner and claims == 1
    assert await holds(showme, org, invite_id, winner)
    assert not await holds(showme, org, invite_id, None)
    assert not await holds(showme, org, invite_id, phones[answers.index(False)])


async def test_an_open_tells_the_page_whether_it_waits(
    showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    first = await showme_client.post("/api/v1/caller/open", headers=phone_headers(token, REAL))
    assert first.json()["device"] == "holder"
    again = await showme_client.post("/api/v1/caller/open", headers=phone_headers(token, REAL))
    assert again.json()["device"] == "holder"
    other = await showme_client.post("/api/v1/caller/open", headers=phone_headers(token, OTHER))
    assert other.status_code == 200 and other.json()["device"] == "waiting"
    # A malformed device id is no device id.
    odd = await showme_client.post("/api/v1/caller/open", headers=phone_headers(token, "x y"))
    assert odd.json()["device"] == "waiting"
    assert json.loads(odd.text)["invite"]["status"] == "opened"


def test_a_phone_cannot_be_followed_from_call_to_call() -> None:
    """The stored fingerprint is salted with the invite: one phone, two calls, two unrelated
    values (and no id, no fingerprint)."""
    first, second = fingerprint(REAL, "a" * 32), fingerprint(REAL, "b" * 32)
    assert first is not None and second is not None and first != second
    assert fingerprint(None, "a" * 32) is None and fingerprint("short", "a" * 32) is None
