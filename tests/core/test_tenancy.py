"""Tenant isolation: every endpoint, called with another organisation's credentials, is refused
or shows nothing of the first organisation. The walk fails when a new route is not covered."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from starlette.routing import Route

from showme_core.testing import Tenant, client_for, read_feed_backlog
from tests import pictures

# Routes anyone may call: they expose no organisation's data.
PUBLIC = {
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("POST", "/api/v1/caller/open"),
    ("POST", "/api/v1/caller/media"),
    # Delivery reports are authenticated by the provider's signature and the message's secret.
    ("GET", "/api/v1/sms/callbacks/{provider}"),
    ("POST", "/api/v1/sms/callbacks/{provider}"),
    ("GET", "/api/v1/sms/callbacks/{provider}/{message_id}/{secret}"),
    ("POST", "/api/v1/sms/callbacks/{provider}/{message_id}/{secret}"),
    ("GET", "/api/v1/console/extras"),
    ("GET", "/api/v1/caller/extras"),
    ("GET", "/api/v1/openapi.json"),
}


def api_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/api/v1"):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, route.path))
    return found


# North's incident: free text with a slash, percent-encoded in paths.
INCIDENT = "INC/north 7"
BODIES: dict[str, Any] = {
    "/api/v1/invites/{invite_id}/legal-hold": {"hold": True},
}


async def check(
    method: str, path: str, client: httpx.AsyncClient, north: Tenant, invite_id: str, media_id: str
) -> None:
    """``client`` belongs to another organisation than ``north``: prove it cannot touch north."""
    url = (
        path.replace("{invite_id}", invite_id)
        .replace("{media_id}", media_id)
        .replace("{incident_id:path}", quote(INCIDENT, safe=""))
    )
    if (method, path) == ("GET", "/api/v1/events"):
        app = client._transport.app  # type: ignore[attr-defined]
        headers = {k: v for k, v in client.headers.items() if k.lower() != "host"}
        if client.cookies:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        for event in await read_feed_backlog(app, headers, after=0):
            assert invite_id not in str(event) and north.org.id not in str(event)
        return
    body_json = BODIES.get(path, {"phone": "+32470123456", "send_sms": False})
    answer = await client.request(method, url, json=body_json)
    body = answer.text
    if path.endswith("/legal-hold") and "authorization" not in client.headers:
        # A dispatcher is refused as a non-admin before the invite is even looked up.
        assert answer.status_code == 403, (method, path, answer.status_code)
    elif "{invite_id}" in path or "{media_id}" in path or "{incident_id" in path:
        assert answer.status_code == 404, (method, path, answer.status_code)
    else:
        assert answer.status_code in (200, 201), (method, path, body)
    for secret in (invite_id, media_id, north.org.id, north.org.name, INCIDENT):
        assert secret not in body, (method, path)


async def test_every_endpoint_refuses_another_organisation(
    showme_app: Any, make_tenant: Any
) -> None:
    north = await make_tenant()
    south = await make_tenant()
    created = await north.client.post(
        "/api/v1/invites", json={"phone": "+32470123456", "incident_id": INCIDENT}
    )
    invite_id = created.json()["id"]
    token = created.json()["link"].split("#", 1)[1]
    async with client_for(showme_app) as phone:
        uploaded = await phone.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": token},
            files={"picture": ("p.jpg", pictures.jpeg(), "image/jpeg")},
        )
    media_id = uploaded.json()["media"]["id"]
    routes = api_routes(showme_app) - PUBLIC
    assert ("POST", "/api/v1/invites/{invite_id}/end") in routes
    assert ("GET", "/api/v1/media/{media_id}") in routes
    for client in (south.client, south.cad):
        for method, path in sorted(routes):
            await check(method, path, client, north, invite_id, media_id)
    # Positive control: the same walk with north's own credentials does see the invite.
    own = {"cookie": "; ".join(f"{k}={v}" for k, v in north.client.cookies.items())}
    assert any(invite_id in str(e) for e in await read_feed_backlog(showme_app, own))
    # And north still sees its invite, untouched.
    mine = (await north.client.get(f"/api/v1/invites/{invite_id}")).json()
    assert mine["status"] == "pending" and mine["legal_hold"] is False
    assert (await north.client.get(f"/api/v1/media/{media_id}")).status_code == 200
    incident = await north.cad.get(f"/api/v1/incidents/{quote(INCIDENT, safe='')}")
    assert incident.status_code == 200 and incident.json()["invites"][0]["id"] == invite_id


async def test_unauthenticated_calls_are_refused(
    showme_app: Any, showme_client: httpx.AsyncClient
) -> None:
    for method, path in sorted(api_routes(showme_app) - PUBLIC):
        url = path.replace("{invite_id}", "x").replace("{media_id}", "x")
        url = url.replace("{incident_id:path}", "x")
        answer = await showme_client.request(method, url)
        assert answer.status_code == 401, (method, path)
        assert answer.json()["error"]["code"] == "not_authenticated"


async def read_only_client(showme: Any, tenant: Tenant) -> httpx.AsyncClient:
    """A CAD client of ``tenant`` whose key has only the ``invites:read`` scope."""
    from showme_core.accounts import create_api_key
    from showme_core.testing import client_for

    async with showme.transaction() as tx:
        _key, secret = await create_api_key(
            tx.conn, organisation_id=tenant.org.id, name="reader", scopes=["invites:read"]
        )
    app = tenant.client._transport.app  # type: ignore[attr-defined]
    return client_for(app, headers={"Authorization": f"Bearer {secret}"})


async def test_scopes_limit_api_keys(showme: Any, tenant: Tenant) -> None:
    async with await read_only_client(showme, tenant) as reader:
        assert (await reader.get("/api/v1/invites")).status_code == 200
        refused = await reader.post("/api/v1/invites", json={"phone": "+32470123456"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "missing_scope"


async def test_cookie_changes_need_our_origin(tenant: Tenant) -> None:
    for origin in ("http://evil.test", "null"):
        answer = await tenant.client.post(
            "/api/v1/invites", json={"phone": "+32470123456"}, headers={"Origin": origin}
        )
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "origin_refused"
    tenant.client.headers.pop("Origin")
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470123456"})
    assert answer.status_code == 403
    # API keys are not ambient credentials: no Origin needed.
    assert "Origin" not in tenant.cad.headers
    ok = await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123456", "send_sms": False})
    assert ok.status_code == 201
    assert (await tenant.client.get("/api/v1/invites")).status_code == 200


async def test_outbox_links_need_the_right_to_send(showme: Any, tenant: Tenant) -> None:
    await tenant.client.post("/api/v1/invites", json={"phone": "+32470123456"})
    async with await read_only_client(showme, tenant) as reader:
        assert (await reader.get("/api/v1/invites")).status_code == 200
        assert (await reader.get("/api/v1/outbox")).status_code == 403


async def test_revoked_key_loses_an_open_feed(showme: Any, tenant: Tenant) -> None:
    import asyncio

    from showme_core.accounts import create_api_key, revoke_api_key

    async with showme.transaction() as tx:
        key, secret = await create_api_key(tx.conn, organisation_id=tenant.org.id, name="feed")
    app = tenant.client._transport.app  # type: ignore[attr-defined]
    feed = asyncio.create_task(read_feed_backlog(app, {"authorization": f"Bearer {secret}"}))
    for _ in range(200):
        if showme.metrics.feed_clients._value.get() > 0:
            break
        await asyncio.sleep(0.01)
    async with showme.transaction() as tx:
        assert await revoke_api_key(tx.conn, tenant.org.id, key.id)
    events = await asyncio.wait_for(feed, 10)
    assert events == [{}]  # the "ended" event, and the stream closed
