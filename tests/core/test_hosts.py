"""Links and provider callbacks come from ``public_url`` only; requests for other host names are
refused, except the probes a load balancer makes by an instance's address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from showme_core.config import Settings
from showme_core.store.schema import invites
from showme_core.testing import ProviderPlugin, RecordingSmsProvider, Tenant, settings_for_tests

PUBLIC = "https://showme.psap.example"


@pytest.fixture
def recording() -> RecordingSmsProvider:
    return RecordingSmsProvider()


@pytest.fixture
def showme_plugins(recording: RecordingSmsProvider) -> list[object]:
    return [ProviderPlugin(sms=[recording])]


@pytest.fixture
def showme_settings(tmp_path: Path, showme_database_url: str) -> Settings:
    # The in-process clients call http://showme.test: an internal name the operator allowed.
    return settings_for_tests(
        tmp_path, showme_database_url, public_url=PUBLIC, allowed_hosts=["showme.test"]
    )


async def invite_count(showme: Any) -> int:
    async with showme.db.read() as db:
        return int(await db.scalar(select(func.count()).select_from(invites)) or 0)


async def test_links_and_callbacks_use_public_url_whatever_the_host(
    make_tenant: Any, showme: Any, recording: RecordingSmsProvider
) -> None:
    tenant: Tenant = await make_tenant(sms_providers=[recording.name])
    answer = await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123456"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["link"].startswith(f"{PUBLIC}/c/#")
    await showme.drain()
    assert recording.sent[-1].callback_url is not None
    assert recording.sent[-1].callback_url.startswith(f"{PUBLIC}/api/v1/sms/callbacks/")
    assert f"{PUBLIC}/c/#" in recording.sent[-1].body


@pytest.mark.parametrize(
    "host", ["evil.example", "showme.psap.example.evil.example", "showme.test:8000", ""]
)
async def test_a_foreign_host_is_refused_and_changes_nothing(
    tenant: Tenant, showme: Any, host: str
) -> None:
    before = await invite_count(showme)
    answer = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123456"}, headers={"Host": host}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "host_not_allowed"
    assert await invite_count(showme) == before


@pytest.mark.parametrize(
    "host", ["showme.psap.example", "showme.psap.example:443", "SHOWME.PSAP.EXAMPLE"]
)
async def test_public_url_host_is_accepted(tenant: Tenant, host: str) -> None:
    answer = await tenant.cad.get("/api/v1/me", headers={"Host": host})
    assert answer.status_code == 200, answer.text


async def test_health_answers_any_host(showme_client: httpx.AsyncClient) -> None:
    answer = await showme_client.get("/healthz", headers={"Host": "10.0.0.7:8000"})
    assert answer.status_code == 200


async def test_a_foreign_host_cannot_open_a_signaling_socket(showme_app: Any) -> None:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws/signal",
        "raw_path": b"/ws/signal",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"evil.example")],
        "client": ("127.0.0.1", 1),
        "server": ("showme.test", 80),
        "subprotocols": [],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await showme_app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


class TestWithoutPublicUrl:
    @pytest.fixture
    def showme_settings(self, tmp_path: Path, showme_database_url: str) -> Settings:
        # Nothing configured: any host is accepted, and no link can be made.
        return settings_for_tests(tmp_path, showme_database_url, public_url=None, allowed_hosts=[])

    async def test_no_link_is_made_and_nothing_is_created(
        self, tenant: Tenant, showme: Any
    ) -> None:
        before = await invite_count(showme)
        for send_sms in (True, False):
            answer = await tenant.cad.post(
                "/api/v1/invites",
                json={"phone": "+32470123456", "send_sms": send_sms},
                headers={"Host": "evil.example"},
            )
            assert answer.status_code == 503
            assert answer.json()["error"]["code"] == "public_url_not_set"
            assert "public_url" in answer.json()["error"]["message"]
        assert await invite_count(showme) == before

    async def test_delivery_reports_are_refused(self, showme_client: httpx.AsyncClient) -> None:
        answer = await showme_client.post(
            "/api/v1/sms/callbacks/outbox", headers={"Host": "evil.example"}
        )
        assert answer.status_code == 503


async def test_two_host_headers_are_refused(showme_app: Any) -> None:
    """One Host for the check, another for what reads the request's URL: refused outright."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/me",
        "raw_path": b"/api/v1/me",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"evil.example"), (b"host", b"showme.test")],
        "client": ("127.0.0.1", 1),
        "server": ("showme.test", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await showme_app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert b"host_not_allowed" in sent[1]["body"]
