"""ICE providers: each side of a session gets servers issued for its own socket, from the static
configuration, coturn's REST secret, or Twilio's Network Traversal Service (a local fake)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from showme_core.app import ShowMe, create_app
from showme_core.config import Settings
from showme_core.defaults.ice_static import validate_ice_servers
from showme_core.hookspecs import hookimpl
from showme_core.plugins import PluginError
from showme_core.providers import IceConfig, IceRequest
from showme_core.signaling import Peer
from showme_core.testing import settings_for_tests
from showme_ice_coturn import CoturnIce, turn_credentials
from showme_ice_twilio import TwilioIce, TwilioIceError
from tests.fake_twilio_tokens import FakeTwilioTokens, twilio_tokens
from tests.turn import TurnServer

REQUEST = IceRequest("org1", "inv1", "caller", "peer-0001")


def test_static_servers_are_checked_when_the_service_starts(tmp_path: Any) -> None:
    good = [
        {"urls": "stun:stun.example.org:3478"},
        {"urls": ["turns:turn.example.org:443?transport=tcp"], "username": "u", "credential": "p"},
    ]
    assert validate_ice_servers(good) == good
    for bad in (
        "stun:x",
        [{"url": "stun:x"}],
        [{"urls": "http://x"}],
        [{"urls": []}],
        [{"urls": "turn:x", "password": "p"}],
    ):
        with pytest.raises(ValueError, match=r"(?i)ice"):
            validate_ice_servers(bad)
    settings = settings_for_tests(
        tmp_path, "sqlite+aiosqlite:///:memory:", plugin_settings={"core": {"ice": "nowhere"}}
    )
    with pytest.raises(PluginError, match="nowhere"):
        ShowMe(settings)


def test_coturn_credentials_follow_the_rest_algorithm() -> None:
    username, password = turn_credentials("s3cret", "peer-1", 600, now=1_700_000_000)
    assert username == "1700000600:peer-1"  # the expiry, not the issue time
    expected = hmac.new(b"s3cret", b"1700000600:peer-1", hashlib.sha1).digest()
    assert base64.b64decode(password) == expected


async def test_coturn_credentials_are_per_socket_and_accepted_by_coturn(
    turn_server: TurnServer,
) -> None:
    provider = CoturnIce(turn_server.secret, turn_server.urls, [], ttl=60)
    first = await provider.ice_servers(REQUEST)
    other = await provider.ice_servers(IceRequest("org1", "inv1", "console", "peer-0002"))
    assert first.ttl == 60
    turn = first.ice_servers[0]
    assert turn["urls"] == turn_server.urls
    assert turn["username"].endswith(":peer-0001")
    assert other.ice_servers[0]["username"].endswith(":peer-0002")
    assert turn_server.allocates(turn["username"], turn["credential"])
    # Expired or forged credentials make no allocation.
    stale_user, stale_password = turn_credentials(turn_server.secret, "peer", -10)
    assert not turn_server.allocates(stale_user, stale_password)
    assert not turn_server.allocates(turn["username"], "forged")


@pytest.fixture
def twilio() -> Iterator[str]:
    with twilio_tokens() as url:
        yield url


async def test_twilio_tokens_are_fetched_per_socket(twilio: str) -> None:
    provider = TwilioIce("ACtest", "SKkey", "secret", ttl=300, base_url=twilio)
    config = await provider.ice_servers(REQUEST)
    assert config.ttl == 300  # Twilio sends it as a string
    assert config.ice_servers[0]["urls"] == "stun:global.stun.twilio.com:3478"
    assert all("url" not in s for s in config.ice_servers)  # the legacy key is dropped
    assert config.ice_servers[1]["username"].startswith("dc2d")
    assert FakeTwilioTokens.seen[0]["path"] == "/2010-04-01/Accounts/ACtest/Tokens.json"
    assert FakeTwilioTokens.seen[0]["form"] == {"Ttl": ["300"]}
    await provider.ice_servers(REQUEST)
    assert len(FakeTwilioTokens.seen) == 2  # a fresh token every time


async def test_twilio_refusals_and_outages_are_explained(twilio: str) -> None:
    with pytest.raises(TwilioIceError, match=r"401.*20003 Authenticate"):
        await TwilioIce("ACtest", "SKkey", "wrong", base_url=twilio).ice_servers(REQUEST)
    closed = TwilioIce("ACtest", "SKkey", "secret", base_url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(TwilioIceError, match="could not be reached"):
        await closed.ice_servers(REQUEST)
    with pytest.raises(ValueError, match="account_sid"):
        TwilioIce("nope", "SKkey", "secret")


class Failing:
    name = "failing"

    async def ice_servers(self, request: IceRequest) -> IceConfig:
        raise RuntimeError("provider down")


class Counting:
    name = "counting"

    def __init__(self) -> None:
        self.requests: list[IceRequest] = []

    async def ice_servers(self, request: IceRequest) -> IceConfig:
        self.requests.append(request)
        return IceConfig(
            [{"urls": "turn:127.0.0.1:3478", "username": request.peer_id, "credential": "x"}], ttl=5
        )


async def test_a_plugin_provider_is_used_and_its_failure_is_survived(
    tmp_path: Any, showme_database_url: str
) -> None:
    counting = Counting()
    settings: Settings = settings_for_tests(
        tmp_path,
        showme_database_url,
        plugin_settings={"core": {"ice": "counting", "ice_transport_policy": "relay"}},
    )

    class IcePlugin:
        @hookimpl
        def showme_register_ice_providers(self, register: Any) -> None:
            register(counting)
            register(Failing())

    showme: ShowMe = create_app(settings, plugins=[IcePlugin()]).state.showme

    async def nowhere(*_: Any) -> None:
        return None

    peer = Peer("caller", "org1", "inv1", "caller:inv1", nowhere, nowhere)
    ice = await showme.hub.ice_for(peer)
    assert ice == {
        "iceServers": [{"urls": "turn:127.0.0.1:3478", "username": peer.id, "credential": "x"}],
        "iceTransportPolicy": "relay",
        "ttl": 5,
    }
    assert counting.requests[0].role == "caller" and counting.requests[0].invite_id == "inv1"
    assert await showme.hub.ice_for(peer) is ice  # asked again at once: the same, no new call
    assert len(counting.requests) == 1
    showme.ice = showme.ice_providers["failing"]
    other = Peer("console", "org1", "inv1", "user:1", nowhere, nowhere)
    assert (await showme.hub.ice_for(other))["iceServers"] == []
    assert 'showme_ice_provider_failures_total{provider="failing"} 1.0' in (
        showme.metrics.render().decode()
    )
