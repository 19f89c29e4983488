"""The plugin inside ShowMe: activated by name, sending an invite's SMS to the fake Clickatell,
and its delivery report coming back through ``/api/v1/sms/callbacks/clickatell?token=``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from showme_core.config import Settings
from showme_core.testing import Tenant, settings_for_tests
from tests.plugins.showme_sms_clickatell.fake_clickatell import FakeClickatell
from tests.plugins.showme_sms_clickatell.test_send import TOKEN

CALLBACKS = "/api/v1/sms/callbacks/clickatell"


@pytest.fixture
def showme_settings(tmp_path: Path, showme_database_url: str, fake: FakeClickatell) -> Settings:
    return settings_for_tests(
        tmp_path,
        showme_database_url,
        plugins=["sms_clickatell"],
        plugin_settings={
            "sms_clickatell": {
                "api_key": fake.api_key,
                "callback_token": TOKEN,
                "base_url": fake.url,
                "timeout": 3,
            }
        },
    )


async def wait_for_sms(tenant: Tenant, invite_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        invite: dict[str, Any] = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
        if invite["sms"] and invite["sms"]["status"] in statuses:
            return invite
        if time.monotonic() > deadline:
            raise AssertionError(f"no SMS status {statuses}: {invite['sms']}")
        await asyncio.sleep(0.02)


async def send_invite(make_tenant: Any, fake: FakeClickatell, phone: str) -> tuple[Tenant, str]:
    tenant: Tenant = await make_tenant(sms_providers=["clickatell"])
    answer = await tenant.client.post("/api/v1/invites", json={"phone": phone})
    assert answer.status_code == 201, answer.text
    invite_id: str = answer.json()["id"]
    return tenant, invite_id


async def test_an_invite_is_sent_and_its_delivery_report_moves_it(
    make_tenant: Any, fake: FakeClickatell, showme_client: Any
) -> None:
    tenant, invite_id = await send_invite(make_tenant, fake, "+32470000001")
    invite = await wait_for_sms(tenant, invite_id, "sent")
    sms_id = invite["sms"]["id"]
    assert invite["sms"]["provider"] == "clickatell"
    ((api_message_id, client_message_id),) = fake.sent.items()
    assert client_message_id == sms_id
    assert fake.requests[-1].body["to"] == ["32470000001"]

    body = fake.status_report(api_message_id, 5, "DEVICE_ACK")
    headers = {"Content-Type": "application/json"}
    forged = await showme_client.post(f"{CALLBACKS}?token=nope", content=body, headers=headers)
    assert forged.status_code == 403
    missing = await showme_client.post(CALLBACKS, content=body, headers=headers)
    assert missing.status_code == 403
    assert (await wait_for_sms(tenant, invite_id, "sent"))["sms"]["status"] == "sent"

    genuine = await showme_client.post(f"{CALLBACKS}?token={TOKEN}", content=body, headers=headers)
    assert genuine.status_code == 204, genuine.text
    await wait_for_sms(tenant, invite_id, "delivered")

    # A late "queued" report (out of order, as Clickatell warns) changes nothing.
    late = fake.status_report(api_message_id, 2, "QUEUED", shape="platform")
    again = await showme_client.post(f"{CALLBACKS}?token={TOKEN}", content=late, headers=headers)
    assert again.status_code == 204
    assert (await wait_for_sms(tenant, invite_id, "delivered"))["sms"]["status"] == "delivered"


async def test_an_undelivered_report_is_shown_to_the_dispatcher(
    make_tenant: Any, fake: FakeClickatell, showme_client: Any
) -> None:
    tenant, invite_id = await send_invite(make_tenant, fake, "+32470000002")
    await wait_for_sms(tenant, invite_id, "sent")
    ((api_message_id, _),) = fake.sent.items()
    body = fake.status_report(api_message_id, 7, "ERROR_DELIVERING_MESSAGE", shape="platform")
    answer = await showme_client.post(
        f"{CALLBACKS}?token={TOKEN}", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 204, answer.text
    invite = await wait_for_sms(tenant, invite_id, "undelivered")
    assert invite["sms"]["error_code"] == "undelivered"


async def test_a_definitive_refusal_ends_the_chain(make_tenant: Any, fake: FakeClickatell) -> None:
    tenant, invite_id = await send_invite(make_tenant, fake, "+32470009025")
    invite = await wait_for_sms(tenant, invite_id, "failed")
    assert invite["sms"]["error_code"] == "invalid_number"
    assert not fake.sent


async def test_a_report_about_an_unknown_message_is_refused(
    fake: FakeClickatell, showme_client: Any
) -> None:
    fake.sent["api-unknown"] = "no-such-message"
    body = fake.status_report("api-unknown", 5, "DEVICE_ACK")
    answer = await showme_client.post(
        f"{CALLBACKS}?token={TOKEN}", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 403
