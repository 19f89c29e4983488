"""Registration refuses settings that cannot work; ``check()`` asks Vonage for the balance."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from showme_core.config import Settings
from showme_core.providers import SmsProvider
from showme_sms_vonage import VonageSms, showme_register_sms_providers
from tests.plugins.showme_sms_vonage.fake_vonage import API_KEY, API_SECRET, FakeVonage

GOOD = {"api_key": API_KEY, "api_secret": API_SECRET, "from": "ShowMe"}


def registered(options: dict[str, Any]) -> list[SmsProvider]:
    found: list[SmsProvider] = []
    config = Settings(plugin_settings={"sms_vonage": options})
    showme_register_sms_providers(found.append, config)
    return found


def test_the_hook_registers_one_provider_named_vonage() -> None:
    [provider] = registered({**GOOD, "timeout": "4"})
    assert isinstance(provider, VonageSms) and isinstance(provider, SmsProvider)
    assert provider.name == "vonage"
    assert provider.base_url == "https://rest.nexmo.com"


def test_a_number_sender_loses_its_plus() -> None:
    [provider] = registered({**GOOD, "from": "+32 470123456".replace(" ", "")})
    assert isinstance(provider, VonageSms) and provider.sender == "32470123456"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"api_key": None}, "'api_key'"),
        ({"api_key": ""}, "'api_key'"),
        ({"api_secret": None}, "'api_secret'"),
        ({"from": None}, "'from'"),
        ({"from": "  "}, "'from'"),
        ({"from": "Emergency-Services"}, "11"),
        ({"from": "Nöd"}, "11 ASCII"),
        ({"from": "1234567890123456"}, "15 digits"),
        ({"signature_method": "sha384"}, "signature_method"),
        ({"signature_secret": "s", "signature_method": "sha384"}, "signature_method"),
        ({"signature_secret": ""}, "signature_secret"),
        ({"base_url": "rest.nexmo.com"}, "base_url"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"api_secrett": "typo"}, "api_secrett"),
    ],
)
def test_unusable_settings_are_refused_clearly(change: dict[str, Any], words: str) -> None:
    options = {**GOOD, **change}
    options = {key: value for key, value in options.items() if value is not None}
    with pytest.raises(ValueError, match=words):
        registered(options)


def test_unconfigured_it_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="sms_vonage needs 'api_key'"):
        registered({})


async def test_check_reports_the_account_and_its_balance(fake: FakeVonage) -> None:
    provider = VonageSms(API_KEY, API_SECRET, "ShowMe", base_url=fake.url)
    assert await provider.check() == "Vonage account fakekey1, balance 15.54 EUR, sender ShowMe"
    [request] = fake.requests
    assert (request.method, request.path) == ("GET", "/account/get-balance")
    # The secret goes in the Authorization header, never in a URL that proxies and logs keep.
    assert request.basic_auth == (API_KEY, API_SECRET)
    assert "api_secret" not in request.params


async def test_check_says_when_the_credentials_are_refused(fake: FakeVonage) -> None:
    provider = VonageSms(API_KEY, "wrong-secret", "ShowMe", base_url=fake.url)
    with pytest.raises(RuntimeError, match="credentials refused") as caught:
        await provider.check()
    assert "wrong-secret" not in str(caught.value)


async def test_check_says_when_vonage_cannot_be_reached() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = VonageSms(API_KEY, API_SECRET, "ShowMe", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(RuntimeError, match="could not be reached"):
        await provider.check()
