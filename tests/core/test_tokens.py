"""Link tokens: strong, stored only as a hash, bound to one live invite, never in a log."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text, update

from showme_core import tokens
from showme_core.app import ShowMe
from showme_core.clock import utcnow
from showme_core.store.schema import invites, metadata
from showme_core.testing import Tenant

HEADER = "X-ShowMe-Link"


async def make_invite(tenant: Tenant) -> tuple[str, str]:
    answer = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123456", "send_sms": True}
    )
    assert answer.status_code == 201
    body = answer.json()
    return body["id"], body["link"].split("#", 1)[1]


def test_tokens_carry_at_least_128_bits_and_differ() -> None:
    minted = {tokens.mint()[0] for _ in range(1000)}
    assert len(minted) == 1000
    assert all(len(t) * 6 >= 128 and tokens.looks_like_token(t) for t in minted)


async def test_token_is_stored_only_as_a_hash(tenant: Tenant, showme: ShowMe) -> None:
    invite_id, token = await make_invite(tenant)
    await showme.drain()
    async with showme.db.read() as db:
        stored = await db.scalar(select(invites.c.token_hash).where(invites.c.id == invite_id))
        assert stored == tokens.hash_token(token) != token
        for table in metadata.sorted_tables:
            for row in await db.execute(select(table)):
                assert token not in repr(tuple(row)), f"token found in {table.name}"


async def test_caller_opens_link_once(tenant: Tenant, showme_client: httpx.AsyncClient) -> None:
    invite_id, token = await make_invite(tenant)
    first = await showme_client.post("/api/v1/caller/open", headers={HEADER: token})
    assert first.status_code == 200, first.text
    assert first.json()["organisation"]["name"] == tenant.org.name
    assert first.json()["invite"]["language"] == "en"
    opened = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
    assert opened["status"] == "opened"
    again = await showme_client.post("/api/v1/caller/open", headers={HEADER: token})
    assert again.status_code == 200
    assert (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()["opened_at"] == opened[
        "opened_at"
    ]


async def test_loading_the_page_alone_does_not_open(
    tenant: Tenant, showme_client: httpx.AsyncClient
) -> None:
    invite_id, _token = await make_invite(tenant)
    page = await showme_client.get("/c/")  # what a link-preview bot fetches: no fragment
    assert page.status_code == 200
    assert (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()["status"] == "pending"


@pytest.mark.parametrize(
    "forged",
    ["", "x", "A" * 24, tokens.mint()[0], "../../etc/passwd", "a" * 500, "ñ" * 24],
)
async def test_forged_tokens_are_refused(
    tenant: Tenant, showme_client: httpx.AsyncClient, forged: str
) -> None:
    await make_invite(tenant)
    headers = {HEADER: forged} if forged.isascii() else {HEADER: forged.encode()}
    answer = await showme_client.post("/api/v1/caller/open", headers=headers)  # type: ignore[arg-type]
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_link"


async def test_ended_invite_kills_the_link(
    tenant: Tenant, showme_client: httpx.AsyncClient
) -> None:
    invite_id, token = await make_invite(tenant)
    assert (await tenant.client.post(f"/api/v1/invites/{invite_id}/end")).status_code == 200
    answer = await showme_client.post("/api/v1/caller/open", headers={HEADER: token})
    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "link_ended"


async def test_expired_invite_refuses_the_link(
    tenant: Tenant, showme: ShowMe, showme_client: httpx.AsyncClient
) -> None:
    invite_id, token = await make_invite(tenant)
    async with showme.transaction() as tx:
        await tx.conn.execute(
            update(invites)
            .where(invites.c.id == invite_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    answer = await showme_client.post("/api/v1/caller/open", headers={HEADER: token})
    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "link_expired"
    listed = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
    assert listed["status"] == "expired"


async def test_invite_lifetime_follows_the_organisation(make_tenant: object) -> None:
    tenant = await make_tenant(invite_ttl_seconds=600)  # type: ignore[operator]
    body = (
        await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123456", "send_sms": False})
    ).json()
    from datetime import datetime

    created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires - created == timedelta(seconds=600)


async def test_another_organisations_token_opens_only_its_own_invite(
    make_tenant: object, showme_client: httpx.AsyncClient
) -> None:
    north = await make_tenant()  # type: ignore[operator]
    south = await make_tenant()  # type: ignore[operator]
    north_invite, north_token = await make_invite(north)
    answer = await showme_client.post("/api/v1/caller/open", headers={HEADER: north_token})
    assert answer.json()["organisation"]["name"] == north.org.name
    # The token is no credential for anything else: not an API key, not another org's invite.
    as_key = await showme_client.get(
        "/api/v1/invites", headers={"Authorization": f"Bearer {north_token}"}
    )
    assert as_key.status_code == 401
    assert (await south.client.get(f"/api/v1/invites/{north_invite}")).status_code == 404
    assert (await south.client.post(f"/api/v1/invites/{north_invite}/end")).status_code == 404
    opened = (await north.client.get(f"/api/v1/invites/{north_invite}")).json()
    assert opened["status"] == "opened"


async def test_no_token_reaches_the_log(
    tenant: Tenant, showme: ShowMe, showme_client: httpx.AsyncClient
) -> None:
    seen = []
    for _ in range(3):
        invite_id, token = await make_invite(tenant)
        seen.append(token)
        await showme_client.post("/api/v1/caller/open", headers={HEADER: token})
        await tenant.client.post(f"/api/v1/invites/{invite_id}/end")
        await showme_client.post("/api/v1/caller/open", headers={HEADER: token})
    await showme.drain()
    assert showme.settings.log_file is not None
    log = showme.settings.log_file.read_text()
    assert "sms kept in outbox" in log and "/api/v1/caller/open" in log
    for token in seen:
        assert token not in log
    assert tenant.api_key not in log
    assert tenant.password not in log


async def test_acknowledged_writes_are_durable(showme: ShowMe) -> None:
    async with showme.db.read() as db:
        if not showme.db.is_sqlite:
            assert (await db.execute(text("SHOW synchronous_commit"))).scalar() == "on"
            assert (await db.execute(text("SHOW fsync"))).scalar() == "on"
            return
        assert (await db.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await db.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
        assert (await db.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
