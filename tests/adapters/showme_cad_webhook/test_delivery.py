"""Deliveries in-process, on both stores: signed as Standard Webhooks (checked with the reference
library), only what the endpoint may have, in order per invite through an outage, retried,
given up and replayed, and never to an address that is not public."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
from standardwebhooks import Webhook

from showme_cad_webhook.adapter import WebhookAdapter
from showme_core.app import ShowMe
from tests.adapters.showme_cad_webhook.conftest import Psap
from tests.adapters.showme_cad_webhook.helpers import (
    BASE,
    create_endpoint,
    deliveries,
    eventually,
    invite,
    link_token,
    upload,
)
from tests.adapters.showme_cad_webhook.receiver import Receiver

PHONE = "+32470123456"


async def test_a_delivery_is_signed_as_standard_webhooks_say(
    north: Psap, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url)
    receiver.secrets = [endpoint["secret"]]
    created = await invite(north.cad)
    await eventually(receiver.accepted, 10, "the invite's delivery")
    seen = receiver.accepted()[0]
    # The reference library checks it again here, with the headers as sent.
    payload = Webhook(endpoint["secret"]).verify(seen.body, seen.headers)
    assert payload["type"] == "invite.created"
    assert payload["timestamp"].endswith("Z")
    event = payload["data"]
    assert event["type"] == "invite.created" and event["invite_id"] == created["id"]
    assert set(event) == {"id", "type", "invite_id", "data", "created_at"}
    assert abs(int(seen.headers["webhook-timestamp"]) - time.time()) < 60
    assert seen.headers["webhook-signature"].startswith("v1,")
    assert seen.headers["content-type"] == "application/json"
    assert seen.host == f"127.0.0.1:{receiver.port}"
    # A forged body does not verify with the same headers.
    with pytest.raises(Exception, match="signature"):
        Webhook(endpoint["secret"]).verify(seen.body.replace(b"invite", b"Invite"), seen.headers)


async def test_retries_keep_the_message_id_and_attempts_are_visible(
    north: Psap, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.created"])
    receiver.secrets = [endpoint["secret"]]
    receiver.next_statuses.extend([503, 500])
    await invite(north.cad)
    await eventually(receiver.accepted, 10, "the delivery after two failures")
    tries = receiver.received
    assert [r.status for r in tries] == [503, 500, 204]
    assert len({r.message_id for r in tries}) == 1
    assert all(r.verified for r in tries)
    listed = await eventually(
        lambda: _delivered(north, endpoint["id"]), 10, "the delivery recorded as delivered"
    )
    attempts = listed[0]["attempts"]  # newest first
    assert [a["status_code"] for a in attempts] == [204, 500, 503]
    assert attempts[1]["error"].startswith("HTTP 500")
    assert all(a["duration_ms"] >= 0 and a["at"] for a in attempts)
    assert listed[0]["message_id"] == tries[0].message_id


async def _delivered(north: Psap, endpoint_id: str) -> list[dict[str, Any]]:
    found = await deliveries(north.admin, endpoint_id, state="delivered")
    return found


async def test_phone_and_locations_leave_only_for_endpoints_allowed_them(
    north: Psap, make_receiver: Any, showme: ShowMe, anonymous: Any
) -> None:
    private, full = make_receiver(), make_receiver()
    plain = await create_endpoint(north.admin, private.url)
    trusted = await create_endpoint(
        north.admin, full.url, include_phone=True, include_locations=True
    )
    private.secrets, full.secrets = [plain["secret"]], [trusted["secret"]]
    created = await invite(north.cad, incident_id="INC-42")
    picture = await upload(anonymous, link_token(created))
    assert picture["media"]["location"] is not None

    def both_saw_the_picture() -> bool:
        return all(
            any(e["type"] == "media.created" for e in r.accepted_events()) for r in (private, full)
        )

    await eventually(both_saw_the_picture, 10, "the picture at both receivers")
    token = link_token(created)
    for receiver in (private, full):
        for seen in receiver.received:
            assert token.encode() not in seen.body, "a caller's link left ShowMe"
    by_type = {e["type"]: e["data"] for e in private.accepted_events()}
    assert by_type["invite.created"]["invite"]["phone"] is None
    assert PHONE.encode() not in b"".join(r.body for r in private.received)
    media = by_type["media.created"]["media"]
    assert media["location"] is None
    assert media["url"] == f"{showme.public_base()}/api/v1/media/{picture['media']['id']}"
    assert media["sha256"] == picture["media"]["sha256"]
    assert media["incident_id"] == "INC-42"

    trusted_by_type = {e["type"]: e["data"] for e in full.accepted_events()}
    assert trusted_by_type["invite.created"]["invite"]["phone"] == PHONE
    location = trusted_by_type["media.created"]["media"]["location"]
    assert location["lat"] == pytest.approx(50.8466, abs=1e-3)


async def test_filters_choose_the_events(north: Psap, receiver: Receiver, anonymous: Any) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["media.*"])
    receiver.secrets = [endpoint["secret"]]
    created = await invite(north.cad)
    await upload(anonymous, link_token(created))
    await eventually(receiver.accepted, 10, "the picture's delivery")
    await north.cad.post(f"/api/v1/invites/{created['id']}/end")
    listed = await eventually(
        lambda: deliveries(north.admin, endpoint["id"]), 10, "the deliveries list"
    )
    assert {d["type"] for d in listed} == {"media.created"}
    assert {e["type"] for e in receiver.accepted_events()} == {"media.created"}


async def test_during_a_rotation_both_secrets_sign(north: Psap, receiver: Receiver) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.*"])
    rotated = await north.admin.post(
        f"{BASE}/endpoints/{endpoint['id']}/rotate-secret", json={"overlap_seconds": 3600}
    )
    new_secret = rotated.json()["secret"]
    receiver.secrets = [endpoint["secret"]]  # a receiver not yet switched
    await invite(north.cad)
    seen = (await eventually(receiver.accepted, 10, "a delivery"))[0]
    assert len(seen.headers["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(seen.body, seen.headers)  # and one already switched
    Webhook(endpoint["secret"]).verify(seen.body, seen.headers)

    # Without an overlap the old secret stops signing at once.
    await north.admin.post(
        f"{BASE}/endpoints/{endpoint['id']}/rotate-secret", json={"overlap_seconds": 0}
    )
    await invite(north.cad)
    await eventually(lambda: len(receiver.received) >= 2, 10, "the next delivery")
    refused = receiver.received[1]
    assert not refused.verified and refused.status == 401
    assert len(refused.headers["webhook-signature"].split(" ")) == 1


async def test_receiver_down_then_back_gets_every_event_in_order(
    north: Psap, receiver: Receiver, anonymous: Any
) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url)
    receiver.secrets = [endpoint["secret"]]
    receiver.down()
    made = []
    for number in range(4):
        created = await invite(north.cad)
        made.append(created["id"])
        if number % 2 == 0:
            await upload(anonymous, link_token(created))
    for invite_id in made[:2]:
        assert (await north.cad.post(f"/api/v1/invites/{invite_id}/end")).status_code == 200
    feed = await north.cad.get("/api/v1/invites")  # the events as the store has them
    assert feed.status_code == 200

    def tried_while_down() -> bool:
        return len(receiver.received) == 0  # nobody listens: nothing arrives

    # Several rounds of attempts fail while it is down (each refused connection is recorded).
    async def refused_attempts() -> bool:
        listed = await deliveries(north.admin, endpoint["id"], state="pending")
        return any(d["attempt_count"] >= 2 for d in listed)

    await eventually(refused_attempts, 10, "attempts refused while the receiver is down")
    assert tried_while_down()
    receiver.up()

    expected = await _events_of(north, made)
    await eventually(
        lambda: {e["id"] for e in receiver.accepted_events()} >= set(expected), 15, "every event"
    )
    got = receiver.accepted_events()
    assert len(got) == len({e["id"] for e in got}), "an event came twice"
    per_invite: dict[str, list[int]] = defaultdict(list)
    for event in got:
        per_invite[event["invite_id"]].append(event["id"])
    for invite_id, ids in per_invite.items():
        assert ids == sorted(ids), f"invite {invite_id}'s events overtook each other: {ids}"
    assert {e["id"] for e in got} == set(expected)


async def _events_of(north: Psap, invite_ids: list[str]) -> dict[int, str]:
    """Every event of these invites, by id, from the API's own incident-free listing."""
    found: dict[int, str] = {}
    for invite_id in invite_ids:
        answer = await north.cad.get(f"/api/v1/invites/{invite_id}")
        assert answer.status_code == 200
    # The feed's backlog is the truth for what happened.
    from showme_core.testing import read_feed_backlog

    app = north.cad._transport.app  # type: ignore[attr-defined]
    headers = {k: v for k, v in north.cad.headers.items() if k.lower() != "host"}
    for event in await read_feed_backlog(app, headers):
        if event["invite_id"] in invite_ids:
            found[event["id"]] = event["type"]
    return found


async def test_a_failing_endpoint_holds_nothing_else(north: Psap, make_receiver: Any) -> None:
    dead, alive = make_receiver(), make_receiver()
    dead.delay = 1.5  # answers, but late, and then with an error
    dead.status = 500
    broken = await create_endpoint(north.admin, dead.url)
    healthy = await create_endpoint(north.admin, alive.url)
    dead.secrets, alive.secrets = [broken["secret"]], [healthy["secret"]]
    started = time.monotonic()
    for _ in range(3):
        await invite(north.cad)
    created_in = time.monotonic() - started
    await eventually(lambda: len(alive.accepted()) >= 3, 5, "the healthy endpoint's deliveries")
    # Three invites were created and delivered elsewhere before the dead one answered twice.
    assert time.monotonic() - started < 3.0
    assert created_in < 1.5, f"creating three invites took {created_in:.2f} s"


def resolving(table: dict[str, list[str]], calls: list[str]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return table[host]

    return resolve


async def test_an_internal_address_is_refused_when_sending(
    north: Psap, receiver: Receiver, adapter: WebhookAdapter
) -> None:
    table = {"cad.test": ["127.0.0.1"]}
    calls: list[str] = []
    adapter.resolver = resolving(table, calls)
    url = f"http://cad.test:{receiver.port}/hooks/showme"
    endpoint = await create_endpoint(north.admin, url, event_types=["invite.created"])
    receiver.secrets = [endpoint["secret"]]
    table["cad.test"] = ["10.1.2.3"]  # the name now points inside
    await invite(north.cad)

    async def refused() -> list[dict[str, Any]]:
        listed = await deliveries(north.admin, endpoint["id"])
        return [d for d in listed if d["attempt_count"] >= 1]

    attempt = (await eventually(refused, 10, "a refused attempt"))[0]["attempts"][-1]
    assert "10.1.2.3, a private address" in attempt["error"]
    assert attempt["status_code"] is None
    assert receiver.received == []
    table["cad.test"] = ["127.0.0.1"]
    seen = (await eventually(receiver.accepted, 10, "the delivery once the name is public"))[0]
    # The request went to the address that was checked, under the URL's own name.
    assert seen.host == f"cad.test:{receiver.port}"


async def test_the_connection_goes_to_the_address_that_was_checked(
    north: Psap, receiver: Receiver, adapter: WebhookAdapter
) -> None:
    calls: list[str] = []
    answers = iter([["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        # A rebinding name: the first answer passes the check, any later one points inside.
        calls.append(host)
        return next(answers, ["10.9.9.9"])

    adapter.resolver = rebinding
    endpoint = await create_endpoint(
        north.admin, f"http://rebind.test:{receiver.port}/h", event_types=["invite.created"]
    )
    receiver.secrets = [endpoint["secret"]]
    assert calls == ["rebind.test"]  # checked at creation
    answers = iter([["127.0.0.1"]])
    calls.clear()
    await invite(north.cad)
    await eventually(receiver.accepted, 10, "the delivery")
    # One resolution for the attempt, and no other: httpx was handed the address itself.
    assert calls == ["rebind.test"]


async def test_deliveries_survive_a_restart(
    north: Psap, receiver: Receiver, showme: ShowMe
) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.created"])
    receiver.secrets = [endpoint["secret"]]
    receiver.down()
    made = [(await invite(north.cad))["id"] for _ in range(3)]

    async def recorded() -> bool:
        return len(await deliveries(north.admin, endpoint["id"], state="pending")) == 3

    await eventually(recorded, 10, "three pending deliveries")
    await showme.stop()
    receiver.up()
    from showme_core.app import create_app

    again = create_app(showme.settings)
    await again.state.showme.start()
    try:
        await eventually(lambda: len(receiver.accepted()) == 3, 15, "the pending deliveries")
    finally:
        await again.state.showme.stop()
    assert sorted(e["invite_id"] for e in receiver.accepted_events()) == sorted(made)


async def test_an_event_handed_over_twice_is_sent_once(
    north: Psap, receiver: Receiver, showme: ShowMe, adapter: WebhookAdapter
) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.created"])
    receiver.secrets = [endpoint["secret"]]
    first = await invite(north.cad)
    await eventually(
        lambda: deliveries(north.admin, endpoint["id"], state="delivered"), 10, "one delivery"
    )
    events = await showme.events_after(north.org.id, 0, 500)
    again = next(e for e in events if e.type == "invite.created" and e.invite_id == first["id"])
    # The core hands an event over at least once: after a crash, the same one comes again.
    await adapter.deliver(again)
    assert len(await deliveries(north.admin, endpoint["id"])) == 1
    assert await deliveries(north.admin, endpoint["id"], state="pending") == []
    second = await invite(north.cad)
    await eventually(lambda: len(receiver.accepted()) >= 2, 10, "the next invite's delivery")
    assert sorted(e["invite_id"] for e in receiver.accepted_events()) == sorted(
        [first["id"], second["id"]]
    )
