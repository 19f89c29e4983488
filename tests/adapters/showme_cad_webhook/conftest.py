"""Fixtures for the webhook adapter: the service with the adapter loaded through its entry point,
two organisations (each with an admin, a dispatcher and CAD keys), and a receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from showme_cad_webhook.adapter import WebhookAdapter, adapter_of
from showme_core.accounts import Role, create_api_key, create_user
from showme_core.app import ShowMe, create_app
from showme_core.config import Settings
from showme_core.organisations import Organisation, create_organisation
from showme_core.testing import TEST_PASSWORD, client_for, settings_for_tests, unique
from tests.adapters.showme_cad_webhook.receiver import Receiver

# Quick retries and looks, and loopback receivers over plain http (the test setting).
FAST: dict[str, Any] = {
    "allow_insecure_loopback": True,
    "retry_first_seconds": 0.05,
    "retry_max_seconds": 0.4,
    "request_timeout_seconds": 2.0,
    "lease_seconds": 8.0,
    "poll_seconds": 0.1,
}


@dataclass
class Psap:
    """An organisation with a signed-in admin and dispatcher, and CAD API keys."""

    org: Organisation
    admin: httpx.AsyncClient
    dispatcher: httpx.AsyncClient
    cad: httpx.AsyncClient  # every scope
    reader: httpx.AsyncClient  # invites:read only


@pytest.fixture
def webhook_settings() -> dict[str, Any]:
    """The adapter's settings block; a test may override it."""
    return dict(FAST)


@pytest.fixture
def showme_settings(
    tmp_path: Path, showme_database_url: str, webhook_settings: dict[str, Any]
) -> Settings:
    return settings_for_tests(
        tmp_path,
        showme_database_url,
        plugins=["cad_webhook"],
        plugin_settings={"cad_webhook": webhook_settings},
    )


async def _seed(showme: ShowMe) -> tuple[Organisation, dict[str, str]]:
    slug = unique("psap")
    async with showme.transaction() as tx:
        org = await create_organisation(
            tx.conn, slug=slug, name=f"PSAP {slug}", default_region="BE"
        )
        logins = {}
        for role in (Role.ADMIN, Role.DISPATCHER):
            email = f"{unique(role.value)}@example.test"
            await create_user(
                tx.conn,
                showme.passwords,
                organisation_id=org.id,
                email=email,
                name=role.value,
                role=role,
                password=TEST_PASSWORD,
            )
            logins[role.value] = email
        _key, logins["cad"] = await create_api_key(tx.conn, organisation_id=org.id, name="CAD")
        _key, logins["reader"] = await create_api_key(
            tx.conn, organisation_id=org.id, name="reader", scopes=["invites:read"]
        )
    return org, logins


@pytest.fixture
async def seeded_app(showme_settings: Settings) -> AsyncIterator[tuple[Any, list[Any]]]:
    """The app with two organisations made before it starts, so that the core's event lanes for
    them run from the start (a lane for a later organisation starts within ten seconds)."""
    app = create_app(showme_settings)
    showme: ShowMe = app.state.showme
    seeds = [await _seed(showme), await _seed(showme)]
    await showme.start()
    try:
        yield app, seeds
    finally:
        # The store is shared by the session: endpoints left active would each get a sender
        # in every later test's service.
        endpoints = adapter_of(showme).endpoints
        for org, _logins in seeds:
            for endpoint in await endpoints.every(org.id):
                await endpoints.delete(org.id, endpoint.id)
        await showme.stop()


@pytest.fixture
def showme(seeded_app: tuple[Any, list[Any]]) -> ShowMe:
    service: ShowMe = seeded_app[0].state.showme
    return service


@pytest.fixture
def adapter(showme: ShowMe) -> WebhookAdapter:
    return adapter_of(showme)


async def _psap(app: Any, org: Organisation, logins: dict[str, str]) -> Psap:
    clients = []
    for role in ("admin", "dispatcher"):
        client = client_for(app)
        signed_in = await client.post(
            "/api/v1/session", json={"email": logins[role], "password": TEST_PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        clients.append(client)
    keys = []
    for name in ("cad", "reader"):
        key_client = client_for(app, headers={"Authorization": f"Bearer {logins[name]}"})
        key_client.headers.pop("Origin")
        keys.append(key_client)
    return Psap(org, clients[0], clients[1], keys[0], keys[1])


@pytest.fixture
async def psaps(seeded_app: tuple[Any, list[Any]]) -> AsyncIterator[list[Psap]]:
    app, seeds = seeded_app
    made = [await _psap(app, org, logins) for org, logins in seeds]
    yield made
    for psap in made:
        for client in (psap.admin, psap.dispatcher, psap.cad, psap.reader):
            await client.aclose()


@pytest.fixture
async def anonymous(seeded_app: tuple[Any, list[Any]]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(seeded_app[0]) as client:
        yield client


@pytest.fixture
def north(psaps: list[Psap]) -> Psap:
    return psaps[0]


@pytest.fixture
def south(psaps: list[Psap]) -> Psap:
    return psaps[1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**options: Any) -> Receiver:
        receiver = Receiver(**options)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()
