"""https to the address that was checked, with TLS still checking the URL's name: the server is
asked for that name (SNI) and its certificate must be for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from showme_cad_webhook.adapter import WebhookAdapter
from tests.adapters.showme_cad_webhook.certs import Pki, make_pki
from tests.adapters.showme_cad_webhook.conftest import FAST, Psap
from tests.adapters.showme_cad_webhook.helpers import (
    create_endpoint,
    deliveries,
    eventually,
    invite,
)
from tests.adapters.showme_cad_webhook.receiver import Receiver


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "cad.test")


@pytest.fixture
def webhook_settings(pki: Pki) -> dict[str, Any]:
    # The test CA is trusted (as a CAD behind a private PKI would be configured).
    return {**FAST, "ca_file": str(pki.ca_file)}


@pytest.fixture
def names_seen() -> list[str | None]:
    return []


@pytest.fixture
def tls_receiver(pki: Pki, names_seen: list[str | None]) -> Iterator[Receiver]:
    receiver = Receiver(tls=pki.server_context(names_seen))
    try:
        yield receiver
    finally:
        receiver.close()


def both_names_are_here(adapter: WebhookAdapter) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert host in ("cad.test", "impostor.test"), host
        return ["127.0.0.1"]

    adapter.resolver = resolve


async def test_tls_checks_the_urls_name_on_the_checked_address(
    north: Psap, tls_receiver: Receiver, adapter: WebhookAdapter, names_seen: list[str | None]
) -> None:
    both_names_are_here(adapter)
    url = f"https://cad.test:{tls_receiver.port}/hooks/showme"
    endpoint = await create_endpoint(north.admin, url, event_types=["invite.created"])
    tls_receiver.secrets = [endpoint["secret"]]
    await invite(north.cad)
    seen = (await eventually(tls_receiver.accepted, 10, "the delivery over https"))[0]
    assert seen.host == f"cad.test:{tls_receiver.port}"
    assert names_seen and set(names_seen) == {"cad.test"}


async def test_a_certificate_for_another_name_is_refused(
    north: Psap, tls_receiver: Receiver, adapter: WebhookAdapter, tmp_path: Path
) -> None:
    both_names_are_here(adapter)
    # Same address, but the server's certificate is not for this name.
    url = f"https://impostor.test:{tls_receiver.port}/hooks/showme"
    endpoint = await create_endpoint(north.admin, url, event_types=["invite.created"])
    tls_receiver.secrets = [endpoint["secret"]]
    await invite(north.cad)

    async def refused() -> list[dict[str, Any]]:
        listed = await deliveries(north.admin, endpoint["id"])
        return [d for d in listed if d["attempt_count"] >= 1]

    attempt = (await eventually(refused, 10, "a refused attempt"))[0]["attempts"][-1]
    assert "certificate" in attempt["error"].lower(), attempt
    assert attempt["status_code"] is None
    assert tls_receiver.received == []
