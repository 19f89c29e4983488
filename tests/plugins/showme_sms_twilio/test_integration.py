"""The plugin inside ShowMe: activated by name, sending through the fake Twilio, and Twilio's
signed status reports going through the core's callback route to the invite's SMS status.

In-process, the fake cannot reach the app over HTTP, so the test carries each report the fake
signs (for the ``StatusCallback`` URL it was given) to the same path through the app's client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from showme_core.config import Settings
from showme_core.testing import Tenant, settings_for_tests
from tests.plugins.showme_sms_twilio.fake_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    FakeTwilio,
    twilio_signature,
)

PUBLIC_URL = "https://showme.example.org"


@pytest.fixture
def showme_settings(tmp_path: Path, showme_database_url: str, fake_twilio: FakeTwilio) -> Settings:
    return settings_for_tests(
        tmp_path,
        showme_database_url,
        public_url=PUBLIC_URL,
        plugins=["sms_twilio"],
        plugin_settings={
            "sms_twilio": {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from": FROM_NUMBER,
                "base_url": fake_twilio.url,
                "timeout": 5,
            }
        },
    )


async def wait_sms(tenant: Tenant, invite_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    invite: dict[str, Any] = {}
    while time.monotonic() < deadline:
        invite = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
        if invite["sms"] and invite["sms"]["status"] == status:
            return invite
        await asyncio.sleep(0.02)
    raise AssertionError(f"the SMS of {invite_id} never became {status}: {invite}")


async def invite_through_twilio(tenant: Tenant, fake: FakeTwilio, phone: str) -> tuple[str, str]:
    """Create an invite; return its id and the Twilio sid its SMS got."""
    answer = await tenant.client.post("/api/v1/invites", json={"phone": phone})
    assert answer.status_code == 201, answer.text
    invite = await wait_sms(tenant, answer.json()["id"], "sent")
    assert invite["sms"]["provider"] == "twilio"
    [sid] = [m.sid for m in fake.messages.values() if m.to == invite["phone"]]
    return invite["id"], sid


async def post_report(
    client: httpx.AsyncClient, fake: FakeTwilio, sid: str, status: str, code: int | None = None
) -> httpx.Response:
    url = fake.messages[sid].status_callback
    assert url is not None
    headers, body = fake.signed(url, fake.report_params(sid, status, code))
    return await client.post(urlsplit(url).path, headers=headers, content=body)


async def test_reports_through_the_core_route_move_the_invites_sms(
    make_tenant: Callable[..., Awaitable[Tenant]],
    showme_client: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
) -> None:
    tenant = await make_tenant(sms_providers=["twilio"])
    invite_id, sid = await invite_through_twilio(tenant, fake_twilio, "0470 12 34 56")
    message = fake_twilio.messages[sid]
    assert message.to == "+32470123456"
    assert message.status_callback is not None
    assert message.status_callback.startswith(f"{PUBLIC_URL}/api/v1/sms/callbacks/twilio/")
    assert fake_twilio.seen[-1].form["From"] == [FROM_NUMBER]

    # A forged report changes nothing.
    url = message.status_callback
    params = fake_twilio.report_params(sid, "undelivered", 30003)
    headers, body = fake_twilio.signed(url, params)
    headers["X-Twilio-Signature"] = twilio_signature("not-the-token", url, params)
    forged = await showme_client.post(urlsplit(url).path, headers=headers, content=body)
    assert forged.status_code == 403
    # Out of order and repeated: delivered wins, and stays.
    for status in ("delivered", "sent", "delivered"):
        answer = await post_report(showme_client, fake_twilio, sid, status)
        assert answer.status_code == 204, answer.text
    invite = await wait_sms(tenant, invite_id, "delivered")
    assert invite["sms"]["error_code"] is None
    assert (await post_report(showme_client, fake_twilio, sid, "failed", 30008)).status_code == 204
    assert (await wait_sms(tenant, invite_id, "delivered"))["sms"]["provider"] == "twilio"


async def test_an_undelivered_report_reaches_the_dispatcher(
    make_tenant: Callable[..., Awaitable[Tenant]],
    showme_client: httpx.AsyncClient,
    fake_twilio: FakeTwilio,
) -> None:
    tenant = await make_tenant(sms_providers=["twilio"])
    invite_id, sid = await invite_through_twilio(tenant, fake_twilio, "0470 00 00 02")
    answer = await post_report(showme_client, fake_twilio, sid, "undelivered", 30003)
    assert answer.status_code == 204, answer.text
    invite = await wait_sms(tenant, invite_id, "undelivered")
    assert invite["sms"]["error_code"] == "undelivered"


async def test_a_twilio_refusal_fails_the_sms(
    make_tenant: Callable[..., Awaitable[Tenant]], fake_twilio: FakeTwilio
) -> None:
    tenant = await make_tenant(sms_providers=["twilio"], allowed_countries=["US"])
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+1 500 555 0001"})
    assert answer.status_code == 201, answer.text
    invite = await wait_sms(tenant, answer.json()["id"], "failed")
    assert invite["sms"]["error_code"] == "invalid_number"
    assert fake_twilio.messages == {}
