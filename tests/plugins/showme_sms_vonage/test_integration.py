"""The plugin inside ShowMe: an invite's SMS goes to the fake Vonage with this message's
callback URL, and Vonage's receipt on that URL moves the invite's SMS status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from showme_core.config import Settings
from showme_core.testing import Tenant, client_for, iter_log_lines, settings_for_tests
from tests.plugins.showme_sms_vonage.fake_vonage import (
    API_KEY,
    API_SECRET,
    FakeVonage,
    SentMessage,
)

PUBLIC = "https://showme.example.org"
PHONE = "+32470123456"


@pytest.fixture
def showme_settings(tmp_path: Path, showme_database_url: str, fake: FakeVonage) -> Settings:
    return settings_for_tests(
        tmp_path,
        showme_database_url,
        public_url=PUBLIC,
        plugins=["sms_vonage"],
        plugin_settings={
            "sms_vonage": {
                "api_key": API_KEY,
                "api_secret": API_SECRET,
                "from": "ShowMe",
                "base_url": fake.url,
                "timeout": 5,
            }
        },
    )


@pytest.fixture
async def vonage_side(showme_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling as Vonage does: no Origin, no session."""
    async with client_for(showme_app) as client:
        client.headers.pop("Origin")
        yield client


async def sms_status(tenant: Tenant, invite_id: str, *statuses: str) -> dict[str, Any]:
    """Poll the invite until its SMS has one of ``statuses``, for at most ten seconds."""
    deadline = time.monotonic() + 10
    while True:
        invite: dict[str, Any] = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
        if invite["sms"] and invite["sms"]["status"] in statuses:
            return invite
        if time.monotonic() > deadline:
            raise AssertionError(f"SMS status never became {statuses}: {invite['sms']}")
        await asyncio.sleep(0.02)


async def invite_sent_through_vonage(
    make_tenant: Callable[..., Awaitable[Tenant]], fake: FakeVonage
) -> tuple[Tenant, dict[str, Any], SentMessage, str]:
    tenant = await make_tenant(sms_providers=["vonage"])
    answer = await tenant.client.post("/api/v1/invites", json={"phone": PHONE})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    invite = await sms_status(tenant, created["id"], "sent")
    assert invite["sms"]["provider"] == "vonage"
    [message] = fake.sent
    assert message.form["to"] == PHONE.removeprefix("+")
    assert created["link"] in message.form["text"]
    assert message.client_ref == invite["sms"]["id"]
    callback = message.form["callback"]
    assert callback.startswith(f"{PUBLIC}/api/v1/sms/callbacks/vonage/{invite['sms']['id']}/")
    assert message.form["status-report-req"] == "1"
    return tenant, created, message, urlsplit(callback).path


async def test_a_get_receipt_marks_the_sms_delivered(
    make_tenant: Callable[..., Awaitable[Tenant]],
    fake: FakeVonage,
    vonage_side: httpx.AsyncClient,
    showme_settings: Settings,
) -> None:
    tenant, created, message, path = await invite_sent_through_vonage(make_tenant, fake)
    answer = await vonage_side.get(path, params=fake.dlr(message, "delivered"))
    assert answer.status_code == 204
    invite = await sms_status(tenant, created["id"], "delivered")
    assert invite["sms"]["error_code"] is None

    # A late "accepted" and a repeated "delivered" are taken (204) and change nothing.
    for status in ("accepted", "delivered"):
        answer = await vonage_side.get(path, params=fake.dlr(message, status))
        assert answer.status_code == 204
    invite = (await tenant.client.get(f"/api/v1/invites/{created['id']}")).json()
    assert invite["sms"]["status"] == "delivered"

    # The URL's per-message secret is checked: a report with another secret is refused.
    forged = path.rsplit("/", 1)[0] + "/not-the-secret"
    answer = await vonage_side.get(forged, params=fake.dlr(message, "failed", "1"))
    assert answer.status_code == 403

    token = created["link"].rsplit("#", 1)[1]
    assert not any(token in line for line in iter_log_lines(showme_settings))


async def test_a_post_receipt_of_a_barred_number_marks_it_undelivered(
    make_tenant: Callable[..., Awaitable[Tenant]],
    fake: FakeVonage,
    vonage_side: httpx.AsyncClient,
) -> None:
    tenant, created, message, path = await invite_sent_through_vonage(make_tenant, fake)
    answer = await vonage_side.post(path, data=fake.dlr(message, "failed", "4"))
    assert answer.status_code == 204
    invite = await sms_status(tenant, created["id"], "undelivered")
    assert invite["sms"]["error_code"] == "opted_out"


async def test_an_unsigned_receipt_on_the_account_wide_url_is_refused(
    make_tenant: Callable[..., Awaitable[Tenant]],
    fake: FakeVonage,
    vonage_side: httpx.AsyncClient,
) -> None:
    tenant, created, message, _path = await invite_sent_through_vonage(make_tenant, fake)
    answer = await vonage_side.get(
        "/api/v1/sms/callbacks/vonage", params=fake.dlr(message, "failed", "1")
    )
    assert answer.status_code == 403
    invite = (await tenant.client.get(f"/api/v1/invites/{created['id']}")).json()
    assert invite["sms"]["status"] == "sent"
