"""Creating, listing, reading and ending invites, through a dispatcher session and a CAD key."""

from __future__ import annotations

import asyncio
import re

import pytest

from showme_core.testing import Tenant


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
