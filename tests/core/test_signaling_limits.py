"""What a flood cannot bend: stream reports write at most one event and one audit record per kind
per 10 s and still end on the stream's real state; refused sockets cost no ICE provider call, a
burst of ``ice-request`` a bounded number; the other side's first message never overtakes a
welcome that waits for its ICE servers (docs/live.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from showme_core.app import ShowMe
from showme_core.config import Settings
from showme_core.hookspecs import hookimpl
from showme_core.providers import IceConfig, IceRequest
from showme_core.signaling import ICE_CALLS_PER_INVITE, ICE_CALLS_PER_ORGANISATION, Peer
from tests.conftest import LiveServer, wait_for
from tests.fake_twilio_tokens import USER, FakeTwilioTokens, twilio_tokens
from tests.live_signaling import (
    OFFER,
    Psap,
    caller,
    closed_psaps,
    console,
    receive,
    refused,
    stream_events,
)


@pytest.fixture
def tokens_endpoint() -> Iterator[str]:
    with twilio_tokens() as url:
        yield url


def with_twilio(start_server: Callable[..., LiveServer], base_url: str) -> LiveServer:
    settings = {
        "core": {"ice": "twilio"},
        "ice_twilio": {
            "account_sid": "ACtest",
            "api_key": "SKkey",
            "api_secret": "secret",
            "base_url": base_url,
        },
    }
    return start_server(SHOWME_PLUGINS="ice_twilio", SHOWME_PLUGIN_SETTINGS=json.dumps(settings))


@pytest.fixture
def live(start_server: Callable[..., LiveServer]) -> Iterator[LiveServer]:
    server: LiveServer = start_server()
    yield server
    closed_psaps()


REPORTS: list[dict[str, Any]] = [
    {"event": "camera", "result": "granted"},
    {"event": "camera", "result": "refused"},
    {"event": "stills"},
    {"event": "camera", "result": "unavailable"},
    {"event": "failed", "reason": "ice failed"},
    {"event": "connected", "route": "direct"},
    {"event": "stopped"},
    {"event": "failed", "reason": "offer: OperationError"},
    {"event": "connected", "route": "relay"},
]
KINDS = ["stream.requested", "stream.failed", "stream.stills", "stream.connected", "stream.ended"]


async def test_a_report_flood_writes_once_per_kind_and_ends_on_the_real_state(
    live: LiveServer,
) -> None:
    north = Psap(live, "north")
    invite_id, token = north.invite(send_sms=False)
    phone = await caller(live, token)
    assert (await receive(phone))["type"] == "welcome"
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 4:
        for report in REPORTS:
            await phone.send(json.dumps({"type": "report", **report}))
            sent += 1
        await asyncio.sleep(0.25)  # pacing: about 36 a second, under a socket's 50
    await phone.send(json.dumps({"type": "ice-request"}))
    assert (await receive(phone))["type"] == "ice"  # handled in order: every report is done
    events, audits = stream_events(live, invite_id)
    assert sent > 100
    assert sorted(e["type"] for e in events) == sorted(KINDS), events
    assert sorted(audits) == sorted(KINDS)

    # The flood ended on "connected, relay", held back by its kind's window: written when it
    # opens, and nothing else after it.
    def settled() -> bool:
        found, _ = stream_events(live, invite_id)
        return len(found) > len(KINDS)

    wait_for(settled, 15, "the held-back state to be written")
    events, audits = stream_events(live, invite_id)
    assert [e["type"] for e in events[len(KINDS) :]] == ["stream.connected"]
    assert events[-1]["data"]["stream"] == {
        "invite_id": invite_id,
        "state": "connected",
        "route": "relay",
    }
    assert events[-1]["at"] - events[0]["at"] >= 9.5  # not before its window opened
    assert len(audits) == len(events)
    await phone.close()


async def test_refused_sockets_cost_no_ice_call_and_a_burst_a_bounded_number(
    start_server: Callable[..., LiveServer], tokens_endpoint: str
) -> None:
    server = with_twilio(start_server, tokens_endpoint)
    north = Psap(server, "north")
    _invite_id, token = north.invite(send_sms=False)
    try:
        phone = await caller(server, token, device="the-callers-phone")
        welcome = await receive(phone)
        assert welcome["ice"]["iceServers"][1]["username"] == USER  # from the provider
        assert len(FakeTwilioTokens.seen) == 1

        # A hundred sockets refused before their seat: another phone, a forged link.
        for i in range(100):
            knock = await caller(server, token if i % 2 else "F" * 24, device=f"intruder-{i:04d}")
            assert (await refused(knock))[0] in ("another_device", "invalid_link")
        assert len(FakeTwilioTokens.seen) == 1

        # A burst of ice-requests on one socket: answered from its last answer.
        for _ in range(40):
            await phone.send(json.dumps({"type": "ice-request"}))
        for _ in range(40):
            assert (await receive(phone))["ice"]["iceServers"]
        # Reloads, each asking again at once: the invite's limit holds, and every socket still
        # gets servers (the room's latest answer for its role).
        for _ in range(30):
            phone = await caller(server, token, device="the-callers-phone")
            welcome = await receive(phone)
            assert welcome["type"] == "welcome" and welcome["ice"]["iceServers"], welcome
            assert 0 < welcome["ice"]["ttl"] <= 600
            await phone.send(json.dumps({"type": "ice-request"}))
            assert (await receive(phone))["ice"]["iceServers"]
        assert len(FakeTwilioTokens.seen) <= ICE_CALLS_PER_INVITE[0][0]
        await phone.close()
    finally:
        closed_psaps()


async def test_the_other_sides_offer_waits_for_a_slow_welcome(
    start_server: Callable[..., LiveServer], tokens_endpoint: str
) -> None:
    server = with_twilio(start_server, tokens_endpoint)
    north = Psap(server, "north")
    invite_id, token = north.invite(send_sms=False)
    try:
        phone = await caller(server, token)
        assert (await receive(phone))["type"] == "welcome"
        FakeTwilioTokens.delay = 1.0  # the console's ICE servers take a second
        desk = await console(north, invite_id)
        # The caller hears of the console as soon as it is seated, and offers at once ...
        assert await receive(phone) == {"type": "peer", "present": True}
        await phone.send(json.dumps(OFFER))
        # ... yet the console reads its welcome, with its servers, before that offer.
        welcome = await receive(desk)
        assert welcome["type"] == "welcome" and welcome["peer"] is True
        assert welcome["ice"]["iceServers"]
        assert await receive(desk) == OFFER
        await phone.close()
        await desk.close()
    finally:
        closed_psaps()


class Counting:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    async def ice_servers(self, request: IceRequest) -> IceConfig:
        self.calls += 1
        return IceConfig(
            [{"urls": "turn:127.0.0.1:3478", "username": request.peer_id, "credential": "x"}],
            ttl=600,
        )


COUNTING = Counting()


class CountingIce:
    @hookimpl
    def showme_register_ice_providers(self, register: Any) -> None:
        register(COUNTING)


@pytest.fixture
def showme_plugins() -> list[object]:
    return [CountingIce()]


@pytest.fixture
def showme_settings(showme_settings: Settings) -> Settings:
    return showme_settings.model_copy(update={"plugin_settings": {"core": {"ice": "counting"}}})


async def test_an_organisations_ice_calls_are_limited_and_rooms_reuse_their_answers(
    showme: ShowMe,
) -> None:
    COUNTING.calls = 0

    async def nowhere(*_: Any) -> None:
        return None

    invites = [f"invite-{i:03d}" for i in range(100)]
    answers = []
    for _round in range(4):
        for invite_id in invites:
            peer = Peer("caller", "org-1", invite_id, f"caller:{invite_id}", nowhere, nowhere)
            answers.append(await showme.hub.ice_for(peer))
    limit = ICE_CALLS_PER_ORGANISATION[0][0]
    assert COUNTING.calls == limit
    assert all(answer["iceServers"] for answer in answers)  # over it: the room's last answer
    # Another organisation has its own count.
    other = Peer("caller", "org-2", "invite-x", "caller:invite-x", nowhere, nowhere)
    await showme.hub.ice_for(other)
    assert COUNTING.calls == limit + 1
