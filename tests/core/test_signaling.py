"""Live video signaling over a real WebSocket: who may join a room, what is relayed, what is
refused before a single message passes, and what reports become (docs/live.md)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from showme_core.devices import fingerprint
from tests.conftest import LiveServer
from tests.live_signaling import (
    OFFER,
    Psap,
    caller,
    closed_psaps,
    connect,
    console,
    receive,
    refused,
)


@pytest.fixture
def live(start_server: Any) -> Iterator[LiveServer]:
    server: LiveServer = start_server()
    yield server
    closed_psaps()


async def test_caller_and_console_of_one_invite_talk_and_nobody_else_hears(
    live: LiveServer,
) -> None:
    north = Psap(live, "north")
    invite_id, token = north.invite()
    other_id, other_token = north.invite()
    phone = await caller(live, token)
    welcome = await receive(phone)
    assert welcome["type"] == "welcome" and welcome["invite_id"] == invite_id
    assert welcome["peer"] is False
    assert welcome["video"] == {"audio": False, "facing": "environment"}
    assert welcome["ice"]["iceServers"] == [] and welcome["ice"]["iceTransportPolicy"] == "all"
    bystander = await caller(live, other_token, device="other-phone-device")
    assert (await receive(bystander))["invite_id"] == other_id

    desk = await console(north, invite_id)
    hello = await receive(desk)
    assert hello["type"] == "welcome" and hello["peer"] is True and "video" not in hello
    assert await receive(phone) == {"type": "peer", "present": True}

    await phone.send(json.dumps(OFFER))
    assert await receive(desk) == OFFER
    candidate = {
        "type": "candidate",
        "candidate": {
            "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        },
    }
    await desk.send(json.dumps({"type": "answer", "sdp": "v=0\r\n"}))
    await desk.send(json.dumps(candidate))
    await desk.send(json.dumps({"type": "control", "action": "torch-on"}))
    assert (await receive(phone))["type"] == "answer"
    assert await receive(phone) == candidate
    assert await receive(phone) == {"type": "control", "action": "torch-on"}
    await phone.send(json.dumps({"type": "ice-request"}))
    assert (await receive(phone))["type"] == "ice"

    # The other invite's phone heard nothing of it.
    with pytest.raises(TimeoutError):
        await receive(bystander, timeout=0.5)

    # The dispatcher ends the invite: both sides are told and closed.
    north.http.post(f"/api/v1/invites/{invite_id}/end")
    assert await receive(phone) == {"type": "ended"}
    assert await refused(phone) == ("link_ended", 4410)
    assert await receive(desk) == {"type": "ended"}
    assert await refused(desk) == ("link_ended", 4410)
    await bystander.close()


async def test_refusals_come_before_any_message(live: LiveServer) -> None:
    north = Psap(live, "north")
    south = Psap(live, "south")
    invite_id, token = north.invite()
    ended_id, ended_token = north.invite()
    north.http.post(f"/api/v1/invites/{ended_id}/end")
    expired_id, expired_token = north.invite()
    with sqlite3.connect(live.data_dir / "showme.db") as db:
        db.execute(
            "UPDATE invites SET expires_at = '2020-01-01 00:00:00' WHERE id = ?", (expired_id,)
        )

    assert await refused(await caller(live, "A" * 24)) == ("invalid_link", 4401)
    assert await refused(await caller(live, ended_token)) == ("link_ended", 4410)
    assert await refused(await caller(live, expired_token)) == ("link_expired", 4410)
    # Consoles: another organisation's, a foreign page's, a signed-out one, an ended invite's.
    assert await refused(await console(south, invite_id)) == ("invite_not_found", 4404)
    assert await refused(await console(north, invite_id, origin="http://evil.test")) == (
        "origin_refused",
        4403,
    )
    async with connect(live, Origin=live.url) as anonymous:
        await anonymous.send(
            json.dumps({"type": "hello", "role": "console", "invite_id": invite_id})
        )
        assert await refused(anonymous) == ("not_authenticated", 4401)
    assert await refused(await console(north, ended_id)) == ("link_ended", 4410)
    # A caller's token cannot pose as a console, nor a message skip the hello.
    async with connect(live) as sneaky:
        await sneaky.send(json.dumps(OFFER))
        assert await refused(sneaky) == ("bad_message", 4400)
    async with connect(live) as sneaky:
        await sneaky.send(
            json.dumps({"type": "hello", "role": "console", "invite_id": invite_id, "token": token})
        )
        assert (await refused(sneaky))[1] == 4400

    # None of those reached the real caller of the invite.
    phone = await caller(live, token)
    assert (await receive(phone))["peer"] is False
    with pytest.raises(TimeoutError):
        await receive(phone, timeout=0.5)
    await phone.close()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "bad_message"),
        (json.dumps(["a list"]), "bad_message"),
        (json.dumps({"type": "answer", "sdp": "x"}), "bad_message"),  # a caller never answers
        (json.dumps({"type": "offer", "sdp": "x", "extra": 1}), "bad_message"),
        (json.dumps({"type": "candidate", "candidate": {"candidate": 5}}), "bad_message"),
        (json.dumps({"type": "status", "rung": "flying"}), "bad_message"),
        (json.dumps({"type": "report", "event": "camera", "result": "maybe"}), "bad_message"),
        (json.dumps({"type": "offer", "sdp": "x" * 70_000}), "too_large"),
        # Nested deeper than the parser goes, within 64 KB: refused, not a server error.
        pytest.param("[" * 60_000, "bad_message", id="nested-list"),
        pytest.param(
            '{"type": "offer", "sdp": ' + "[" * 30_000 + "]" * 30_000 + "}",
            "bad_message",
            id="nested-sdp",
        ),
        # Nested within what parses: nothing but flat fields is relayed.
        (
            json.dumps({"type": "candidate", "candidate": {"candidate": "c", "sdpMid": [[[0]]]}}),
            "bad_message",
        ),
    ],
)
async def test_malformed_messages_close_the_sender(
    live: LiveServer, message: str, code: str
) -> None:
    north = Psap(live, "north")
    invite_id, token = north.invite()
    desk = await console(north, invite_id)
    await receive(desk)
    phone = await caller(live, token)
    await receive(phone)
    assert await receive(desk) == {"type": "peer", "present": True}
    await phone.send(message)
    found, close_code = await refused(phone)
    assert found == code
    assert close_code == (1009 if code == "too_large" else 4400)
    assert await receive(desk) == {"type": "peer", "present": False}  # nothing relayed
    await desk.close()
    assert "Traceback" not in live.log_text() and "RecursionError" not in live.log_text()


async def test_a_console_page_on_http_opens_its_ws_socket(live: LiveServer) -> None:
    """The socket's own URL says ws://; the console page's Origin says http://: the same site."""
    north = Psap(live, "north")
    invite_id, _token = north.invite()
    desk = await console(north, invite_id)
    assert (await receive(desk))["type"] == "welcome"
    assert await refused(await console(north, invite_id, origin="http://evil.test")) == (
        "origin_refused",
        4403,
    )
    await desk.close()
    north.http.close()


async def test_repeated_reports_write_nothing_more(live: LiveServer) -> None:
    north = Psap(live, "north")
    _invite_id, token = north.invite(send_sms=False)
    after = north.http.get("/api/v1/invites").json()["last_event_id"]
    phone = await caller(live, token)
    await receive(phone)
    for _ in range(20):
        await phone.send(json.dumps({"type": "report", "event": "camera", "result": "granted"}))
        await phone.send(json.dumps({"type": "report", "event": "stills"}))
        await phone.send(json.dumps({"type": "report", "event": "failed", "reason": "ice"}))
    await phone.send(json.dumps({"type": "ice-request"}))
    await receive(phone)  # handled in order: every report before it is done
    events = north.http.get("/api/v1/invites?limit=1").json()["last_event_id"] - after
    assert events == 3  # requested, stills, failed: once each
    await phone.close()


async def test_a_flood_is_cut_off(live: LiveServer) -> None:
    north = Psap(live, "north")
    _invite_id, token = north.invite()
    phone = await caller(live, token)
    await receive(phone)
    for _ in range(200):
        await phone.send(json.dumps({"type": "status", "rung": "waiting"}))
    assert await refused(phone) == ("too_many_messages", 4429)


async def test_newest_console_takes_over_and_a_second_phone_needs_the_dispatchers_leave(
    live: LiveServer,
) -> None:
    north = Psap(live, "north")
    invite_id, token = north.invite()
    phone = await caller(live, token, device="first-phone-device")
    await receive(phone)
    first = await console(north, invite_id)
    await receive(first)
    assert await receive(phone) == {"type": "peer", "present": True}
    second = await console(north, invite_id)
    assert (await receive(second))["peer"] is True
    assert await receive(first) == {"type": "taken-over"}
    assert await refused(first) == ("taken_over", 4000)
    assert await receive(phone) == {"type": "peer", "present": True}  # offer again, to the new one

    # A reload of the same phone resumes; another phone is refused until the dispatcher allows it.
    reloaded = await caller(live, token, device="first-phone-device")
    assert (await receive(reloaded))["type"] == "welcome"
    assert await refused(phone) == ("replaced", 4001)
    assert await receive(second) == {"type": "peer", "present": False}
    assert await receive(second) == {"type": "peer", "present": True}
    intruder = await caller(live, token, device="second-phone-device")
    assert await refused(intruder) == ("another_device", 4409)
    # The console sees the phone's fingerprint, never its device id.
    second_phone = fingerprint("second-phone-device", invite_id)
    assert await receive(second) == {"type": "device-request", "device": second_phone}
    again = await caller(live, token, device="second-phone-device")
    assert await refused(again) == ("another_device", 4409)  # asked once per phone
    await second.send(json.dumps({"type": "allow-device"}))
    # "Allow" hands the link over at once: the phone that held it is closed as replaced.
    assert await refused(reloaded) == ("replaced", 4001)
    assert await receive(second) == {"type": "peer", "present": False}
    allowed = await caller(live, token, device="second-phone-device")
    assert (await receive(allowed))["type"] == "welcome"
    assert await receive(second) == {"type": "peer", "present": True}
    # The first phone now waits its turn, and the dispatcher is asked about it.
    back = await caller(live, token, device="first-phone-device")
    assert await refused(back) == ("another_device", 4409)
    assert await receive(second) == {
        "type": "device-request",
        "device": fingerprint("first-phone-device", invite_id),
    }
    # A console that takes the seat later is asked about the phones still waiting.
    third = await console(north, invite_id)
    welcome = await receive(third)
    assert welcome["type"] == "welcome" and welcome["peer"] is True
    assert await receive(third) == {
        "type": "device-request",
        "device": fingerprint("first-phone-device", invite_id),
    }
    with sqlite3.connect(live.data_dir / "showme.db") as db:
        held = db.execute("SELECT device_hash FROM invites WHERE id = ?", (invite_id,)).fetchone()
        audited = db.execute(
            "SELECT actor, details FROM audit_records WHERE action = 'invite.device_allowed'"
        ).fetchall()
    assert held == (second_phone,)
    assert [(actor, json.loads(details)) for actor, details in audited] == [
        (f"user:{north.user_id}", {"device": second_phone[:16]})
    ]
    await allowed.close()
    await third.close()


def read_stream_events(live: LiveServer, psap: Psap, after: int, count: int) -> list[Any]:
    seen: list[dict[str, Any]] = []
    url = f"{live.url}/api/v1/events?after={after}"
    with httpx.stream("GET", url, headers={"Cookie": psap.cookie}, timeout=10) as feed:
        for line in feed.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event["type"].startswith("stream."):
                    seen.append(event)
                if len(seen) == count:
                    break
    return seen


async def test_reports_reach_the_feed_the_audit_and_the_metrics(live: LiveServer) -> None:
    north = Psap(live, "north")
    invite_id, token = north.invite()
    after = north.http.get("/api/v1/invites").json()["last_event_id"]
    phone = await caller(live, token)
    await receive(phone)
    desk = await console(north, invite_id)
    await receive(desk)
    assert await receive(phone) == {"type": "peer", "present": True}
    for report in (
        {"event": "camera", "result": "granted"},
        {"event": "stills"},
        {"event": "connected", "route": "relay"},
        {"event": "failed", "reason": "ice failed"},
        {"event": "stopped"},
    ):
        await phone.send(json.dumps({"type": "report", **report}))
    await desk.send(json.dumps({"type": "report", "event": "first-frame"}))
    # Sync points: each socket's messages are handled in order, so an answer to a later one
    # means the reports before it are recorded.
    await phone.send(json.dumps({"type": "ice-request"}))
    assert (await receive(phone))["type"] == "ice"
    await desk.send(json.dumps({"type": "ice-request"}))
    assert (await receive(desk))["type"] == "ice"
    expected = [
        "stream.requested",
        "stream.stills",
        "stream.connected",
        "stream.failed",
        "stream.ended",
    ]
    headers = {"Cookie": north.cookie}
    seen: list[dict[str, Any]] = []
    with httpx.stream(
        "GET", f"{live.url}/api/v1/events?after={after}", headers=headers, timeout=10
    ) as feed:
        for line in feed.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event["type"].startswith("stream."):
                    seen.append(event)
                if len(seen) == len(expected):
                    break
    assert [e["type"] for e in seen] == expected
    assert seen[2]["data"]["stream"] == {
        "invite_id": invite_id,
        "state": "connected",
        "route": "relay",
    }
    metrics = (await asyncio.to_thread(httpx.get, f"{live.url}/metrics")).text
    assert 'showme_stream_camera_total{result="granted"} 1.0' in metrics
    assert 'showme_stream_connected_total{route="relay"} 1.0' in metrics
    assert "showme_stream_stills_total 1.0" in metrics
    assert "showme_stream_first_frame_seconds_count 1.0" in metrics
    await phone.close()
    await desk.close()
