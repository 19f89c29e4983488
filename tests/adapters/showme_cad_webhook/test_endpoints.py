"""Endpoints through the admin routes: who may manage them, which URLs are refused, the secret
shown once and stored sealed, rotation, and one organisation never seeing another's."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from showme_cad_webhook.adapter import WebhookAdapter
from showme_cad_webhook.const import DOMAIN, ENDPOINT
from showme_core.app import ShowMe
from showme_core.errors import InvalidInput
from tests.adapters.showme_cad_webhook.conftest import Psap
from tests.adapters.showme_cad_webhook.helpers import BASE, create_endpoint
from tests.adapters.showme_cad_webhook.receiver import Receiver


def resolving(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such name {host}")
        return table[host]

    return resolve


async def test_only_admins_manage_endpoints(
    north: Psap, receiver: Receiver, anonymous: httpx.AsyncClient
) -> None:
    body = {"url": receiver.url}
    for client, status, code in (
        (north.dispatcher, 403, "admin_only"),
        (north.cad, 403, "admin_only"),  # an API key with every scope still may not
        (north.reader, 403, "admin_only"),
    ):
        answer = await client.post(f"{BASE}/endpoints", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
        listed = await client.get(f"{BASE}/endpoints")
        assert listed.status_code == 403
    assert (await anonymous.get(f"{BASE}/endpoints")).status_code == 401
    assert (await anonymous.post(f"{BASE}/endpoints", json=body)).status_code == 401
    # A cookie-authenticated change from another origin is refused (CSRF).
    foreign = await north.admin.post(
        f"{BASE}/endpoints", json=body, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_refused"
    assert (await create_endpoint(north.admin, receiver.url))["url"] == receiver.url


async def test_secret_is_shown_once_and_stored_sealed(
    north: Psap, receiver: Receiver, showme: ShowMe
) -> None:
    created = await create_endpoint(north.admin, receiver.url, description="CAD test")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) >= len("whsec_") + 32
    shown = await north.admin.get(f"{BASE}/endpoints/{created['id']}")
    listed = await north.admin.get(f"{BASE}/endpoints")
    for answer in (shown, listed):
        assert answer.status_code == 200
        assert secret not in answer.text and secret.removeprefix("whsec_") not in answer.text
        assert "sealed" not in answer.text
    record = await showme.plugin_state(DOMAIN).get(ENDPOINT, created["id"])
    assert record is not None
    stored = json.dumps(record.data)
    assert secret.removeprefix("whsec_") not in stored
    sealed = record.data["secrets"][0]["sealed"]
    assert sealed.startswith("s1.")
    # Sealed for this endpoint alone: the same value does not open as another endpoint's.
    assert showme.unseal(sealed, "cad_webhook.signing_secret." + created["id"]) is not None
    assert showme.unseal(sealed, "cad_webhook.signing_secret.other") is None


REFUSED = [
    ("ftp://cad.example/hook", "https"),
    ("https://user:pw@cad.example/hook", "user name"),
    ("https://cad.example/hook#x", "fragment"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.1.10/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[::ffff:10.0.0.1]/hook", "private"),
    ("https://[64:ff9b::a00:1]/hook", "private"),
    ("https://[2002:a00:1::1]/hook", "private"),
    ("https://[fc00::5]/hook", "private"),
    ("https://224.0.0.251/hook", "multicast"),
    ("https://[ff02::1]/hook", "multicast"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://100.64.0.9/hook", "non-public"),
    ("https://240.0.0.1/hook", "reserved"),
    ("https://intranet.example/hook", "10.20.30.40"),
    ("https://mixed.example/hook", "172.16.0.1"),
    ("https://nowhere.example/hook", "does not resolve"),
]


async def test_urls_that_could_reach_the_internal_network_are_refused(
    north: Psap, adapter: WebhookAdapter
) -> None:
    adapter.resolver = resolving(
        {
            "intranet.example": ["10.20.30.40"],
            # One public and one private address: refused, whichever would be used.
            "mixed.example": ["93.184.215.14", "172.16.0.1"],
        }
    )
    for url, why in REFUSED:
        answer = await north.admin.post(f"{BASE}/endpoints", json={"url": url})
        assert answer.status_code == 422, (url, answer.text)
        assert why in answer.json()["error"]["message"], (url, answer.text)
    assert (await north.admin.get(f"{BASE}/endpoints")).json()["items"] == []


async def test_plain_http_and_loopback_need_the_test_setting(
    north: Psap, adapter: WebhookAdapter, receiver: Receiver
) -> None:
    # The fixture's settings allow them; the same adapter without the setting refuses them.
    from showme_cad_webhook.config import WebhookSettings
    from showme_cad_webhook.endpoints import Endpoints

    strict = Endpoints(adapter.showme, WebhookSettings(), adapter.resolve)
    adapter.resolver = resolving({"localhost": ["127.0.0.1"]})
    for url in (receiver.url, "https://127.0.0.1/hook", "https://localhost/hook"):
        with pytest.raises(InvalidInput, match=r"https|loopback"):
            await strict.create(north.org.id, url=url)
    allowed = await create_endpoint(north.admin, "https://localhost:9/hook")
    assert allowed["url"] == "https://localhost:9/hook"


async def test_event_filters_are_checked(north: Psap, receiver: Receiver) -> None:
    bad = await north.admin.post(
        f"{BASE}/endpoints", json={"url": receiver.url, "event_types": ["invite.nope"]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_event_type"
    good = await create_endpoint(
        north.admin, receiver.url, event_types=["invite.*", "media.created", "invite.*"]
    )
    assert good["event_types"] == ["invite.*", "media.created"]
    assert good["include_phone"] is False and good["include_locations"] is False


async def test_change_disable_rotate_delete(
    north: Psap, receiver: Receiver, showme: ShowMe
) -> None:
    created = await create_endpoint(north.admin, receiver.url)
    one = f"{BASE}/endpoints/{created['id']}"
    changed = await north.admin.patch(one, json={"active": False, "include_phone": True})
    assert changed.status_code == 200, changed.text
    assert changed.json()["active"] is False and changed.json()["include_phone"] is True
    refused = await north.admin.patch(one, json={"url": "https://10.0.0.1/x"})
    assert refused.status_code == 422

    rotated = await north.admin.post(f"{one}/rotate-secret", json={"overlap_seconds": 600})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != created["secret"]
    signing = rotated.json()["secrets"]
    assert len(signing) == 2
    assert signing[0]["expires_at"] is None and signing[1]["expires_at"] is not None
    # A rotation without an overlap retires the old secrets at once.
    again = await north.admin.post(f"{one}/rotate-secret", json={"overlap_seconds": 0})
    assert len(again.json()["secrets"]) == 1

    assert (await north.admin.delete(one)).status_code == 204
    assert (await north.admin.get(one)).status_code == 404
    # Each change is in the organisation's audit trail, with who made it, never the secret.
    from sqlalchemy import select

    from showme_core.store.schema import audit_records

    async with showme.db.read() as db:
        rows = (
            await db.execute(
                select(audit_records)
                .where(audit_records.c.subject == created["id"])
                .order_by(audit_records.c.id)
            )
        ).all()
    assert [row.action for row in rows] == [
        "webhook_endpoint.create",
        "webhook_endpoint.change",
        "webhook_endpoint.rotate",
        "webhook_endpoint.rotate",
        "webhook_endpoint.delete",
    ]
    assert {row.organisation_id for row in rows} == {north.org.id}
    assert all(row.actor.startswith("user:") for row in rows)
    assert "whsec_" not in json.dumps([dict(row.details) for row in rows])


async def test_another_organisations_endpoints_are_not_found(
    north: Psap, south: Psap, receiver: Receiver
) -> None:
    created = await create_endpoint(north.admin, receiver.url)
    one = f"{BASE}/endpoints/{created['id']}"
    assert (await south.admin.get(f"{BASE}/endpoints")).json()["items"] == []
    for method, path, body in (
        ("GET", one, None),
        ("PATCH", one, {"active": False}),
        ("DELETE", one, None),
        ("POST", f"{one}/rotate-secret", {}),
        ("GET", f"{one}/deliveries", None),
        ("GET", f"{one}/deliveries/1", None),
        ("POST", f"{one}/deliveries/1/replay", None),
        ("POST", f"{one}/replay", {"since": "2020-01-01T00:00:00Z"}),
    ):
        answer = await south.admin.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "endpoint_not_found"
    still = await north.admin.get(one)
    assert still.status_code == 200 and still.json()["active"] is True


async def test_an_organisation_has_a_bounded_number_of_endpoints(
    north: Psap, receiver: Receiver
) -> None:
    for _ in range(10):
        await create_endpoint(north.admin, receiver.url)
    over = await north.admin.post(f"{BASE}/endpoints", json={"url": receiver.url})
    assert over.status_code == 409 and over.json()["error"]["code"] == "too_many_endpoints"
