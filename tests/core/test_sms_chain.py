"""The SMS chain's policy, delivery reports and abuse control, with scripted providers
(docs/sms.md); the real providers' own tests are in tests/plugins/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from showme_core.app import ShowMe
from showme_core.config import Settings
from showme_core.providers import (
    CallbackRefused,
    CallbackReport,
    OutgoingSms,
    SmsCallback,
    SmsError,
    SmsNotSent,
    SmsOutcomeUnknown,
    SmsReceipt,
    SmsStatus,
)
from showme_core.testing import ProviderPlugin, Tenant, client_for

PHONE = "+32470123456"


class Scripted:
    """Answers each send with the next scripted outcome (a receipt or an exception)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.script: list[SmsReceipt | BaseException] = []
        self.sent: list[OutgoingSms] = []

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        self.sent.append(sms)
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome or SmsReceipt(
            SmsStatus.SENT, provider_message_id=f"{self.name}-{len(self.sent)}"
        )

    def parse_callback(self, callback: SmsCallback) -> CallbackReport:
        if callback.headers.get("x-signature") != "genuine":
            raise CallbackRefused("bad signature")
        return CallbackReport(
            SmsReceipt(SmsStatus(callback.form["status"]), error_code=callback.form.get("error")),
            provider_message_id=callback.form.get("id"),
        )


first = Scripted("first")
second = Scripted("second")


@pytest.fixture
def showme_plugins() -> list[object]:
    for provider in (first, second):
        provider.script.clear()
        provider.sent.clear()
    return [ProviderPlugin(sms=[first, second])]


@pytest.fixture
def showme_settings(showme_settings: Settings) -> Settings:
    return showme_settings.model_copy(
        update={
            "sms_retry_delays": [0.01, 0.01],
            "sms_rate_per_sender": [(3, 60.0)],
            "sms_rate_per_organisation": [(5, 60.0)],
        }
    )


Maker = Callable[..., Awaitable[Tenant]]


async def send(tenant: Tenant, phone: str = PHONE) -> httpx.Response:
    return await tenant.client.post("/api/v1/invites", json={"phone": phone})


async def settled(showme: ShowMe, tenant: Tenant, invite_id: str) -> dict[str, Any]:
    await showme.drain()
    sms: dict[str, Any] = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()["sms"]
    return sms


async def credits(tenant: Tenant) -> int:
    return int((await tenant.client.get("/api/v1/me")).json()["organisation"]["sms_credits"])


async def test_not_sent_is_retried_then_the_next_provider_takes_it(
    showme: ShowMe, make_tenant: Maker
) -> None:
    tenant = await make_tenant(sms_providers=["first", "second"])
    first.script += [SmsNotSent("connection refused")] * 3
    answer = await send(tenant)
    sms = await settled(showme, tenant, answer.json()["id"])
    assert len(first.sent) == 3  # the first try and two retries
    assert len(second.sent) == 1
    assert (sms["status"], sms["provider"]) == ("sent", "second")
    # Each provider gets its own delivery-report URL, with the message's secret.
    assert (
        first.sent[0].callback_url and "/api/v1/sms/callbacks/first/" in first.sent[0].callback_url
    )
    assert second.sent[0].callback_url and "/callbacks/second/" in second.sent[0].callback_url


async def test_a_retry_succeeds_after_a_429(showme: ShowMe, make_tenant: Maker) -> None:
    tenant = await make_tenant(sms_providers=["first", "second"])
    first.script += [SmsNotSent("HTTP 429", retry_after=0.01)]
    sms = await settled(showme, tenant, (await send(tenant)).json()["id"])
    assert (len(first.sent), len(second.sent), sms["provider"]) == (2, 0, "first")


@pytest.mark.parametrize("policy", ["continue", "stop"])
async def test_an_unclear_failure_moves_on_or_stops_as_the_organisation_chose(
    showme: ShowMe, make_tenant: Maker, policy: str
) -> None:
    tenant = await make_tenant(sms_providers=["first", "second"], sms_on_unclear=policy)
    first.script += [SmsOutcomeUnknown("HTTP 503")]
    before = await credits(tenant)
    answer = await send(tenant)
    invite_id = answer.json()["id"]
    sms = await settled(showme, tenant, invite_id)
    if policy == "continue":
        assert (len(second.sent), sms["status"], sms["provider"]) == (1, "sent", "second")
        return
    assert len(second.sent) == 0
    # Not a failure: the provider may have sent it. No refund; its report may still settle it.
    assert (sms["status"], sms["error_code"], sms["provider"]) == (
        "queued",
        "outcome_unknown",
        "first",
    )
    assert "may not have been sent" in sms["error_message"]
    assert await credits(tenant) == before - 1
    # The dispatcher resends with one click: a new link, the old one dead.
    old_token = answer.json()["link"].split("#", 1)[1]
    resent = await tenant.client.post(f"/api/v1/invites/{invite_id}/resend")
    assert resent.status_code == 201, resent.text
    new_token = resent.json()["link"].split("#", 1)[1]
    assert new_token != old_token
    assert (await settled(showme, tenant, invite_id))["status"] == "sent"
    app = tenant.client._transport.app  # type: ignore[attr-defined]
    async with client_for(app) as phone:
        dead = await phone.post("/api/v1/caller/open", headers={"X-ShowMe-Link": old_token})
        alive = await phone.post("/api/v1/caller/open", headers={"X-ShowMe-Link": new_token})
    assert (dead.status_code, alive.status_code) == (401, 200)


async def test_a_definitive_refusal_ends_the_chain_and_refunds_once(
    showme: ShowMe, make_tenant: Maker
) -> None:
    tenant = await make_tenant(sms_providers=["first", "second"])
    first.script += [
        SmsReceipt(
            SmsStatus.FAILED,
            error_code=SmsError.OPTED_OUT,
            definitive=True,
            error_message="21610 blacklist",
        )
    ]
    before = await credits(tenant)
    sms = await settled(showme, tenant, (await send(tenant)).json()["id"])
    assert len(second.sent) == 0
    assert (sms["status"], sms["error_code"]) == ("failed", "opted_out")
    assert "replied STOP" in sms["error_message"]  # the dispatcher's words, not the provider's
    assert await credits(tenant) == before


async def test_a_non_definitive_refusal_tries_the_next_provider(
    showme: ShowMe, make_tenant: Maker
) -> None:
    tenant = await make_tenant(sms_providers=["first", "second"])
    first.script += [SmsReceipt(SmsStatus.FAILED, error_code=SmsError.NO_BALANCE)]
    sms = await settled(showme, tenant, (await send(tenant)).json()["id"])
    assert (sms["status"], sms["provider"]) == ("sent", "second")


async def report(
    client: httpx.AsyncClient, url: str, status: str, signature: str = "genuine", **extra: str
) -> httpx.Response:
    path = url.split("showme.test", 1)[1]
    return await client.post(
        path, data={"status": status, **extra}, headers={"X-Signature": signature}
    )


async def test_delivery_reports_move_forward_only_and_forgeries_change_nothing(
    showme: ShowMe, make_tenant: Maker, showme_client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(sms_providers=["first"])
    invite_id = (await send(tenant)).json()["id"]
    await settled(showme, tenant, invite_id)
    url = str(first.sent[0].callback_url)
    provider_id = "first-1"
    forged_secret = url.rsplit("/", 1)[0] + "/not-the-secret"
    refusals = [
        await report(showme_client, url, "delivered", signature="forged", id=provider_id),
        await report(showme_client, forged_secret, "delivered", id=provider_id),
        await report(showme_client, url, "delivered", id="someone-elses-message"),
        await report(
            showme_client, url.replace("/first/", "/second/"), "delivered", id=provider_id
        ),
    ]
    assert [r.status_code for r in refusals] == [403, 403, 403, 403]
    assert refusals[0].json()["error"]["code"] == "callback_refused"
    assert (await settled(showme, tenant, invite_id))["status"] == "sent"

    ok = await report(showme_client, url, "delivered", id=provider_id)
    assert ok.status_code == 204
    assert (await settled(showme, tenant, invite_id))["status"] == "delivered"
    # Late and replayed reports: accepted, and nothing moves backwards.
    for status in ("sent", "delivered", "failed"):
        assert (await report(showme_client, url, status, id=provider_id)).status_code == 204
    sms = await settled(showme, tenant, invite_id)
    assert sms["status"] == "delivered"


@pytest.mark.parametrize(("status", "refunded"), [("failed", True), ("undelivered", False)])
async def test_a_failed_report_refunds_once_an_undelivered_one_was_sent(
    showme: ShowMe,
    make_tenant: Maker,
    showme_client: httpx.AsyncClient,
    status: str,
    refunded: bool,
) -> None:
    tenant = await make_tenant(sms_providers=["first"])
    before = await credits(tenant)
    invite_id = (await send(tenant)).json()["id"]
    await settled(showme, tenant, invite_id)
    assert await credits(tenant) == before - 1
    url = str(first.sent[0].callback_url)
    for _ in range(2):
        await report(showme_client, url, status, id="first-1", error="undelivered")
    sms = await settled(showme, tenant, invite_id)
    assert (sms["status"], sms["error_code"]) == (status, "undelivered")
    assert "could not deliver" in sms["error_message"]
    assert await credits(tenant) == (before if refunded else before - 1)


async def test_only_the_provider_holding_the_message_reports_on_it(
    showme: ShowMe, make_tenant: Maker, showme_client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(sms_providers=["first", "second"])
    first.script += [SmsOutcomeUnknown("HTTP 503")]
    invite_id = (await send(tenant)).json()["id"]
    assert (await settled(showme, tenant, invite_id))["provider"] == "second"
    from_first = str(first.sent[0].callback_url)
    refused = await report(showme_client, from_first, "failed", id="first-1")
    assert refused.status_code == 403
    from_second = str(second.sent[0].callback_url)
    assert (await report(showme_client, from_second, "delivered", id="second-1")).status_code == 204
    assert (await settled(showme, tenant, invite_id))["status"] == "delivered"


async def test_resend_is_refused_once_opened_or_outside_the_allowed_countries(
    showme: ShowMe, make_tenant: Maker
) -> None:
    from sqlalchemy import update

    from showme_core.store.schema import organisations

    tenant = await make_tenant(sms_providers=["first"], allowed_countries=["BE", "FR"])
    created = (await send(tenant, "+33612345678")).json()
    async with showme.transaction() as tx:
        await tx.conn.execute(
            update(organisations)
            .where(organisations.c.id == tenant.org.id)
            .values(allowed_countries=["BE"])
        )
    narrowed = await tenant.client.post(f"/api/v1/invites/{created['id']}/resend")
    assert (narrowed.status_code, narrowed.json()["error"]["code"]) == (422, "country_not_allowed")
    opened = (await send(tenant)).json()
    app = tenant.client._transport.app  # type: ignore[attr-defined]
    token = opened["link"].split("#", 1)[1]
    async with client_for(app) as phone:
        await phone.post("/api/v1/caller/open", headers={"X-ShowMe-Link": token})
    again = await tenant.client.post(f"/api/v1/invites/{opened['id']}/resend")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_opened")
    async with client_for(app) as phone:
        still = await phone.post("/api/v1/caller/open", headers={"X-ShowMe-Link": token})
    assert still.status_code == 200


async def test_rate_limits_per_sender_and_per_organisation(
    showme: ShowMe, make_tenant: Maker
) -> None:
    tenant = await make_tenant(sms_providers=["first"])
    for _ in range(3):
        assert (await send(tenant)).status_code == 201
    before = await credits(tenant)
    refused = await send(tenant)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert await credits(tenant) == before  # nothing charged, nothing sent
    await showme.drain()  # the three accepted ones are sent in the background
    assert len(first.sent) == 3
    # A bad number does not use up the limit of another sender of the organisation, the CAD.
    assert (await tenant.cad.post("/api/v1/invites", json={"phone": "12"})).status_code == 422
    for _ in range(2):
        assert (await tenant.cad.post("/api/v1/invites", json={"phone": PHONE})).status_code == 201
    org_limit = await tenant.cad.post("/api/v1/invites", json={"phone": PHONE})
    assert org_limit.status_code == 429 and "organisation" in org_limit.json()["error"]["message"]
    # Links without SMS cost no SMS: they count against the invite limits only (see below).
    quiet = await tenant.cad.post("/api/v1/invites", json={"phone": PHONE, "send_sms": False})
    assert quiet.status_code == 201


async def test_links_without_sms_have_limits_too(
    showme: ShowMe, make_tenant: Maker, showme_settings: Settings
) -> None:
    """Each invite opens upload slots and a signaling room: a key minting link-only invites in a
    loop is stopped like one sending SMS, per sender and per organisation."""
    limits = {"invite_rate_per_sender": [(4, 60.0)], "invite_rate_per_organisation": [(6, 60.0)]}
    showme.settings = showme.settings.model_copy(update=limits)
    tenant = await make_tenant(sms_providers=["first"])

    async def quiet(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/api/v1/invites", json={"phone": PHONE, "send_sms": False})

    for _ in range(4):
        assert (await quiet(tenant.cad)).status_code == 201
    refused = await quiet(tenant.cad)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert "invites" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    for _ in range(2):  # the dispatcher's own allowance, until the organisation's is used up
        assert (await quiet(tenant.client)).status_code == 201
    org_limit = await quiet(tenant.client)
    assert org_limit.status_code == 429 and "organisation" in org_limit.json()["error"]["message"]
    assert first.sent == []


async def test_only_allowed_countries_get_links(showme: ShowMe, make_tenant: Maker) -> None:
    tenant = await make_tenant(sms_providers=["first"])  # BE only, by default
    before = await credits(tenant)
    refused = await send(tenant, "+33612345678")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "country_not_allowed"
    assert await credits(tenant) == before and first.sent == []
    wider = await make_tenant(sms_providers=["first"], allowed_countries=["BE", "FR"])
    assert (await send(wider, "+33612345678")).status_code == 201
    me = (await wider.client.get("/api/v1/me")).json()["organisation"]
    assert me["allowed_countries"] == ["BE", "FR"]


async def test_no_callback_secret_reaches_the_log(
    showme: ShowMe,
    showme_settings: Settings,
    make_tenant: Maker,
    showme_client: httpx.AsyncClient,
) -> None:
    from showme_core.testing import iter_log_lines

    tenant = await make_tenant(sms_providers=["first"])
    invite_id = (await send(tenant)).json()["id"]
    await settled(showme, tenant, invite_id)
    url = str(first.sent[0].callback_url)
    secret = url.rsplit("/", 1)[1]
    assert (await report(showme_client, url, "delivered", id="first-1")).status_code == 204
    lines = list(iter_log_lines(showme_settings))
    assert any("/api/v1/sms/callbacks/first/" in line for line in lines)
    assert not any(secret in line for line in lines)
