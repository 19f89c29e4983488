"""Creating, listing, reading and ending invites, through a dispatcher session and a CAD key."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from showme_core.app import create_app
from showme_core.testing import Tenant, client_for, read_feed_backlog


async def wait_sms_status(tenant: Tenant, invite_id: str, status: str) -> dict[str, object]:
    for _ in range(200):
        invite = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
        if invite["sms"] and invite["sms"]["status"] == status:
            return invite
        await asyncio.sleep(0.02)
    raise AssertionError(f"SMS of {invite_id} never reached {status}: {invite}")


async def test_dispatcher_creates_invite_and_outbox_keeps_the_sms(tenant: Tenant) -> None:
    answer = await tenant.client.post(
        "/api/v1/invites", json={"phone": "0470 12 34 56", "incident_id": "INC-7", "language": "fr"}
    )
    assert answer.status_code == 201, answer.text
    invite = answer.json()
    assert invite["phone"] == "+32470123456"
    assert invite["status"] == "pending"
    assert invite["incident_id"] == "INC-7"
    assert invite["language"] == "fr"
    assert invite["expires_at"] > invite["created_at"]
    assert re.fullmatch(r"http://showme\.test/c/#[A-Za-z0-9_-]{24}", invite["link"])
    assert answer.headers["location"] == f"/api/v1/invites/{invite['id']}"
    sent = await wait_sms_status(tenant, invite["id"], "sent")
    assert sent["sms"]["provider"] == "outbox"
    assert "link" not in sent  # shown once, at creation
    outbox = (await tenant.client.get("/api/v1/outbox")).json()["items"]
    assert outbox[0]["invite_id"] == invite["id"]
    assert invite["link"] in outbox[0]["body"]
    assert outbox[0]["body"].startswith("Les services d'urgence")


async def test_cad_creates_invite_without_sms(tenant: Tenant) -> None:
    before = (await tenant.cad.get("/api/v1/me")).json()["organisation"]["sms_credits"]
    answer = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32 470 00 00 01", "send_sms": False}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["sms"] is None
    assert answer.json()["created_by"].startswith("api_key:")
    after = (await tenant.cad.get("/api/v1/me")).json()["organisation"]["sms_credits"]
    assert after == before
    assert (await tenant.cad.get("/api/v1/outbox")).json()["items"] == []


@pytest.mark.parametrize(
    ("phone", "region", "expected"),
    [
        ("0470 12 34 56", "BE", "+32470123456"),
        ("+33 6 12 34 56 78", "BE", "+33612345678"),
        ("0033 6 12 34 56 78", "BE", "+33612345678"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("(201) 555-0123", "US", "+12015550123"),
    ],
)
async def test_phone_numbers_are_normalised_to_e164(
    make_tenant: object, phone: str, region: str, expected: str
) -> None:
    tenant = await make_tenant(  # type: ignore[operator]
        default_region=region, allowed_countries=["BE", "FR", "US"]
    )
    answer = await tenant.cad.post("/api/v1/invites", json={"phone": phone, "send_sms": False})
    assert answer.status_code == 201, answer.text
    assert answer.json()["phone"] == expected


@pytest.mark.parametrize("phone", ["12", "hello", "+999 1234 5678", "", "0470 12 34 56 78 90 12"])
async def test_invalid_phone_is_refused_and_changes_nothing(tenant: Tenant, phone: str) -> None:
    answer = await tenant.client.post("/api/v1/invites", json={"phone": phone})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_phone"
    assert error["message"]
    assert (await tenant.client.get("/api/v1/invites")).json()["items"] == []
    credits = (await tenant.client.get("/api/v1/me")).json()["organisation"]["sms_credits"]
    assert credits == tenant.org.sms_credits


@pytest.mark.parametrize(
    "body",
    [
        {"phone": "+32470123456", "language": "xx"},
        {"phone": "+32470123456", "unexpected": 1},
        {"phone": 32470123456},
        {"incident_id": "no phone"},
        {"phone": "+32470123456", "incident_id": "x" * 101},
        [],
    ],
)
async def test_bad_invite_bodies_get_422(tenant: Tenant, body: object) -> None:
    answer = await tenant.client.post("/api/v1/invites", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"]
    assert (await tenant.client.get("/api/v1/invites")).json()["items"] == []


async def test_not_json_and_oversized_bodies(tenant: Tenant) -> None:
    answer = await tenant.client.post(
        "/api/v1/invites", content=b"phone=1", headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "not_json"
    answer = await tenant.client.post(
        "/api/v1/invites",
        content=b'{"phone": "' + b"1" * 70_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413


async def test_list_is_newest_first_and_get_and_end(tenant: Tenant) -> None:
    ids = []
    for n in range(3):
        answer = await tenant.cad.post(
            "/api/v1/invites", json={"phone": f"+3247000000{n}", "send_sms": False}
        )
        ids.append(answer.json()["id"])
    listed = (await tenant.client.get("/api/v1/invites")).json()
    assert [i["id"] for i in listed["items"]] == list(reversed(ids))
    assert listed["last_event_id"] >= 3
    one = (await tenant.client.get(f"/api/v1/invites/{ids[0]}")).json()
    assert one["phone"] == "+32470000000"
    ended = await tenant.client.post(f"/api/v1/invites/{ids[0]}/end")
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert ended.json()["ended_at"]
    again = await tenant.client.post(f"/api/v1/invites/{ids[0]}/end")
    assert again.json()["ended_at"] == ended.json()["ended_at"]
    limited = (await tenant.client.get("/api/v1/invites", params={"limit": 1})).json()
    assert len(limited["items"]) == 1
    assert (await tenant.client.get("/api/v1/invites", params={"limit": 0})).status_code == 422


async def test_unknown_invite_is_404(tenant: Tenant) -> None:
    answer = await tenant.client.get("/api/v1/invites/does-not-exist")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "invite_not_found"


async def test_racing_retries_make_one_invite_one_sms_one_charge(
    tenant: Tenant, showme: Any
) -> None:
    """A CAD that did not hear back sends the same request again, twice at once."""
    before = (await tenant.cad.get("/api/v1/me")).json()["organisation"]["sms_credits"]
    headers = {"Idempotency-Key": "cad-request-000042"}
    body = {"phone": "+32470123456", "incident_id": "INC-RACE"}
    answers = await asyncio.gather(
        *(tenant.cad.post("/api/v1/invites", json=body, headers=headers) for _ in range(3))
    )
    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len({answer.json()["link"] for answer in answers}) == 1  # the link, replayed too
    assert sum(answer.headers.get("idempotent-replayed") == "true" for answer in answers) == 2
    await showme.drain()
    listed = (await tenant.cad.get("/api/v1/invites?incident_id=INC-RACE")).json()["items"]
    assert len(listed) == 1
    after = (await tenant.cad.get("/api/v1/me")).json()["organisation"]["sms_credits"]
    assert before - after == listed[0]["sms"]["segments"]  # charged once
    outbox = (await tenant.cad.get("/api/v1/outbox")).json()["items"]
    assert [item["invite_id"] for item in outbox].count(listed[0]["id"]) == 1  # sent once
    # A later retry answers the same; the same key with another request is a conflict.
    again = await tenant.cad.post("/api/v1/invites", json=body, headers=headers)
    assert again.json()["id"] == listed[0]["id"]
    other = await tenant.cad.post(
        "/api/v1/invites", json={**body, "phone": "+32470999999"}, headers=headers
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    # Keys are the caller's own: another key of the organisation with the same key string is
    # another request.
    dispatcher = await tenant.client.post("/api/v1/invites", json=body, headers=headers)
    assert dispatcher.status_code == 201 and dispatcher.json()["id"] != listed[0]["id"]


async def test_racing_retries_on_two_instances_answer_alike(
    make_tenant: Any, showme: Any, showme_settings: Any
) -> None:
    """Copies on two instances: the second fails where the first spent the organisation's last
    credit, and answers with the first's answer, not with its own 402."""
    tenant = await make_tenant(initial_credits=1)
    other_app = create_app(showme_settings)
    await other_app.state.showme.start()
    try:
        headers = {"Idempotency-Key": "cad-request-two-instances", "Origin": ""}
        body = {"phone": "+32470123456", "incident_id": "INC-TWO"}
        async with client_for(
            other_app, headers={"Authorization": f"Bearer {tenant.api_key}"}
        ) as far:
            for _ in range(3):  # racing, then once more each after both answered
                answers = await asyncio.gather(
                    tenant.cad.post("/api/v1/invites", json=body, headers=headers),
                    far.post("/api/v1/invites", json=body, headers=headers),
                )
                assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
                assert len({a.json()["id"] for a in answers}) == 1
    finally:
        await other_app.state.showme.stop()
    listed = (await tenant.cad.get("/api/v1/invites?incident_id=INC-TWO")).json()["items"]
    assert len(listed) == 1
    assert (await tenant.cad.get("/api/v1/me")).json()["organisation"]["sms_credits"] == 0


async def test_a_resend_retry_sends_one_sms(tenant: Tenant, showme: Any) -> None:
    created = await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123456"})
    invite_id = created.json()["id"]
    await showme.drain()
    headers = {"Idempotency-Key": "cad-resend-000001"}
    answers = await asyncio.gather(
        *(tenant.cad.post(f"/api/v1/invites/{invite_id}/resend", headers=headers) for _ in range(2))
    )
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].json()["link"] == answers[1].json()["link"] != created.json()["link"]
    await showme.drain()
    outbox = (await tenant.cad.get("/api/v1/outbox")).json()["items"]
    assert [item["invite_id"] for item in outbox].count(invite_id) == 2  # the first and one resend


async def test_the_database_alone_does_not_hold_a_replayable_link(
    tenant: Tenant, showme: Any
) -> None:
    from sqlalchemy import select

    from showme_core.store.schema import idempotency_records

    answer = await tenant.cad.post(
        "/api/v1/invites",
        json={"phone": "+32470123456", "send_sms": False},
        headers={"Idempotency-Key": "cad-sealed-000001"},
    )
    token = answer.json()["link"].split("#", 1)[1]
    async with showme.db.read() as db:
        rows = (await db.execute(select(idempotency_records))).all()
    assert rows and not any(token in str(tuple(row)) for row in rows)
    assert not any("cad-sealed-000001" in str(tuple(row)) for row in rows)


async def test_an_expired_invite_is_announced_once(
    tenant: Tenant, showme: Any, showme_app: Any
) -> None:
    from datetime import timedelta

    from showme_core.clock import utcnow
    from showme_core.sweeps import announce_expired
    from showme_core.testing import sweep_now

    lapsing = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
    )
    ended = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123457", "send_sms": False}
    )
    await tenant.cad.post(f"/api/v1/invites/{ended.json()['id']}/end")
    later = utcnow() + timedelta(days=1)
    await sweep_now(showme, at=later)  # as the service's own sweep does it, a day later
    assert await announce_expired(showme, now=later) == 0  # once
    events = await read_feed_backlog(showme_app, {"Authorization": f"Bearer {tenant.api_key}"})
    expired = [e for e in events if e["type"] == "invite.expired"]
    assert [e["invite_id"] for e in expired] == [lapsing.json()["id"]]
    assert expired[0]["data"]["invite"]["status"] == "expired"
