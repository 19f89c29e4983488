"""SMS: fixed templates within two segments, credits, refunds, the provider chain and statuses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from showme_core import sms_templates, tokens
from showme_core.app import ShowMe
from showme_core.providers import SmsNotSent, SmsReceipt, SmsStatus
from showme_core.sms import update_status
from showme_core.store.schema import credit_entries
from showme_core.testing import ProviderPlugin, RecordingSmsProvider, Tenant

LONG_PUBLIC_URL = "https://showme.emergency-services.region-of-somewhere.example.org"

primary = RecordingSmsProvider("primary")
backup = RecordingSmsProvider("backup")


@pytest.fixture
def showme_plugins() -> list[object]:
    primary.sent.clear()
    primary.answers.clear()
    backup.sent.clear()
    backup.answers.clear()
    return [ProviderPlugin(sms=[primary, backup])]


@pytest.mark.parametrize("language", sms_templates.LANGUAGES)
def test_every_template_with_a_long_link_fits_two_segments(language: str) -> None:
    link = tokens.link_for(LONG_PUBLIC_URL, tokens.mint()[0])
    text = sms_templates.render(language, link)
    assert link in text
    assert sms_templates.segments(text) <= 2, (language, len(text))


def test_segment_counting() -> None:
    assert sms_templates.segments("a" * 160) == 1
    assert sms_templates.segments("a" * 161) == 2
    assert sms_templates.segments("a" * 306) == 2
    assert sms_templates.segments("a" * 307) == 3
    assert sms_templates.segments("€" * 80) == 1  # extension characters cost two septets
    assert sms_templates.segments("€" * 81) == 2
    assert sms_templates.segments("ê" * 70) == 1  # not GSM-7: UCS-2
    assert sms_templates.segments("ê" * 71) == 2


async def wait_for_status(tenant: Tenant, invite_id: str, *statuses: str) -> dict[str, Any]:
    for _ in range(300):
        invite: dict[str, Any] = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
        if invite["sms"] and invite["sms"]["status"] in statuses:
            return invite
        await asyncio.sleep(0.02)
    raise AssertionError(f"no status {statuses}: {invite}")


async def credits(tenant: Tenant) -> int:
    value: int = (await tenant.client.get("/api/v1/me")).json()["organisation"]["sms_credits"]
    return value


async def test_each_accepted_segment_costs_a_credit(make_tenant: Any) -> None:
    tenant = await make_tenant(sms_providers=["primary"], initial_credits=3)
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000001"})
    assert answer.status_code == 201
    segments = answer.json()["sms"]["segments"]
    assert segments == 1
    await wait_for_status(tenant, answer.json()["id"], "sent")
    assert await credits(tenant) == 3 - segments
    assert primary.sent[-1].to == "+32470000001"


async def test_no_credits_is_a_clear_refusal_that_changes_nothing(make_tenant: Any) -> None:
    tenant = await make_tenant(sms_providers=["primary"], initial_credits=1)
    first = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000001"})
    assert first.status_code == 201
    await wait_for_status(tenant, first.json()["id"], "sent")
    refused = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000002"})
    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "insufficient_credits"
    assert "credits" in refused.json()["error"]["message"]
    items = (await tenant.client.get("/api/v1/invites")).json()["items"]
    assert [i["phone"] for i in items] == ["+32470000001"]
    assert await credits(tenant) == 0
    assert len([s for s in primary.sent if s.organisation_id == tenant.org.id]) == 1
    # Without SMS the link can still be created and read out on the phone.
    manual = await tenant.client.post(
        "/api/v1/invites", json={"phone": "+32470000002", "send_sms": False}
    )
    assert manual.status_code == 201


async def test_definitive_failure_refunds_once(make_tenant: Any, showme: ShowMe) -> None:
    tenant = await make_tenant(sms_providers=["primary", "backup"], initial_credits=5)
    primary.answers["+32470000009"] = SmsReceipt(
        SmsStatus.FAILED, error_code="invalid_number", error_message="bad", definitive=True
    )
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000009"})
    invite = await wait_for_status(tenant, answer.json()["id"], "failed")
    assert invite["sms"]["error_code"] == "invalid_number"
    assert await credits(tenant) == 5
    assert backup.sent == []  # a definitive refusal is not retried elsewhere
    # A late, repeated failure report changes nothing and refunds nothing more.
    assert not await update_status(
        showme, invite["sms"]["id"], SmsReceipt(SmsStatus.FAILED, definitive=True)
    )
    assert await credits(tenant) == 5
    async with showme.db.read() as db:
        refunds = (
            await db.execute(
                select(credit_entries).where(
                    credit_entries.c.sms_message_id == invite["sms"]["id"],
                    credit_entries.c.reason == "refund",
                )
            )
        ).all()
    assert len(refunds) == 1


async def test_provider_error_moves_to_the_next_provider(make_tenant: Any) -> None:
    tenant = await make_tenant(sms_providers=["primary", "backup"], initial_credits=5)
    primary.answers["+32470000008"] = ConnectionRefusedError("primary is down")
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000008"})
    invite = await wait_for_status(tenant, answer.json()["id"], "sent")
    assert invite["sms"]["provider"] == "backup"
    assert backup.sent[-1].to == "+32470000008"
    assert await credits(tenant) == 4


async def test_all_providers_failing_refunds(make_tenant: Any) -> None:
    tenant = await make_tenant(sms_providers=["primary", "missing"], initial_credits=2)
    primary.answers["+32470000007"] = SmsNotSent("connection refused")
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000007"})
    invite = await wait_for_status(tenant, answer.json()["id"], "failed")
    assert invite["sms"]["error_code"] == "provider_unavailable"
    assert await credits(tenant) == 2


async def test_status_never_moves_backwards(tenant: Tenant, showme: ShowMe) -> None:
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000006"})
    invite = await wait_for_status(tenant, answer.json()["id"], "sent")
    sms_id = invite["sms"]["id"]
    assert await update_status(showme, sms_id, SmsReceipt(SmsStatus.DELIVERED))
    assert not await update_status(showme, sms_id, SmsReceipt(SmsStatus.SENT))
    assert not await update_status(showme, sms_id, SmsReceipt(SmsStatus.QUEUED))
    assert not await update_status(showme, sms_id, SmsReceipt(SmsStatus.DELIVERED))
    final = (await tenant.client.get(f"/api/v1/invites/{invite['id']}")).json()
    assert final["sms"]["status"] == "delivered"


async def test_an_unclear_end_is_not_a_failure_and_costs_the_credit(make_tenant: Any) -> None:
    tenant = await make_tenant(sms_providers=["primary"], initial_credits=2)
    primary.answers["+32470000005"] = TimeoutError()  # the provider may have sent it
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000005"})
    for _ in range(300):
        sms = (await tenant.client.get(f"/api/v1/invites/{answer.json()['id']}")).json()["sms"]
        if sms["error_code"]:
            break
        await asyncio.sleep(0.02)
    assert (sms["status"], sms["error_code"]) == ("queued", "outcome_unknown")
    assert await credits(tenant) == 1
