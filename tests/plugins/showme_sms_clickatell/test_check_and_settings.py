"""``showme check`` against the fake, and the settings checked at registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import showme_sms_clickatell
from showme_core.plugins import PluginHost
from showme_core.providers import SmsProvider
from showme_core.testing import settings_for_tests
from showme_sms_clickatell import ClickatellSms
from tests.plugins.showme_sms_clickatell.fake_clickatell import FakeClickatell
from tests.plugins.showme_sms_clickatell.test_send import TOKEN, free_port, provider


async def test_check_reports_the_balance(fake: FakeClickatell) -> None:
    detail = await provider(fake, sender="ShowMe").check()
    assert detail == "balance 12.5 EUR, sender ShowMe, delivery reports accepted"
    request = fake.requests[-1]
    assert (request.method, request.path) == ("GET", "/public-client/balance")
    assert request.headers["authorization"] == fake.api_key


async def test_check_says_when_reports_would_be_refused(fake: FakeClickatell) -> None:
    detail = await provider(fake, callback_token=None).check()
    assert "delivery reports refused (no callback_token)" in detail


@pytest.mark.parametrize("flat", [False, True])
async def test_check_with_a_wrong_key(fake: FakeClickatell, flat: bool) -> None:
    fake.flat_errors = flat
    with pytest.raises(RuntimeError, match="credentials refused") as caught:
        await provider(fake, api_key="wrong-key").check()
    assert "wrong-key" not in str(caught.value)
    assert ("error 108" if flat else "error 1:") in str(caught.value)


async def test_check_when_clickatell_cannot_be_reached() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    sms = ClickatellSms(api_key="k", base_url=base, timeout=2)
    with pytest.raises(RuntimeError, match=f"cannot reach Clickatell at {base}"):
        await sms.check()


def settings(tmp_path: Path, block: dict[str, Any]) -> Any:
    return settings_for_tests(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        plugins=["sms_clickatell"],
        plugin_settings={"sms_clickatell": block},
    )


def test_the_entry_point_registers_the_provider(tmp_path: Path) -> None:
    block = {
        "api_key": "key==",
        "from": "+32470999999",
        "callback_token": TOKEN,
        "base_url": "http://127.0.0.1:9/",
        "timeout": 3,
    }
    providers = PluginHost(settings(tmp_path, block)).sms_providers()
    sms = providers["clickatell"]
    assert isinstance(sms, ClickatellSms) and isinstance(sms, SmsProvider)
    assert (sms.sender, sms.base_url, sms.timeout) == ("32470999999", "http://127.0.0.1:9", 3.0)
    assert sms.callback_token == TOKEN


def test_defaults(tmp_path: Path) -> None:
    registered: list[Any] = []
    showme_sms_clickatell.showme_register_sms_providers(
        registered.append, settings(tmp_path, {"api_key": "key"})
    )
    (sms,) = registered
    assert sms.base_url == "https://platform.clickatell.com"
    assert (sms.timeout, sms.sender, sms.callback_token) == (10.0, None, None)


@pytest.mark.parametrize(
    ("block", "complaint"),
    [
        ({}, "needs 'api_key'"),
        ({"api_key": "  "}, "needs 'api_key'"),
        ({"api_key": 12345}, "needs 'api_key'"),
        ({"api_key": "k", "callback_token": "short"}, "at least 16 characters"),
        ({"api_key": "k", "callback_token": 1234567890123456789}, "at least 16 characters"),
        ({"api_key": "k", "base_url": "platform.clickatell.com"}, "not an http(s) URL"),
        ({"api_key": "k", "base_url": "ftp://platform.clickatell.com"}, "not an http(s) URL"),
        ({"api_key": "k", "timeout": 0}, "between 0 and 60"),
        ({"api_key": "k", "timeout": 600}, "between 0 and 60"),
        ({"api_key": "k", "timeout": "10"}, "number of seconds"),
        ({"api_key": "k", "from": ""}, "'from'"),
        ({"api_key": "k", "callback_secret": TOKEN}, "callback_secret"),
    ],
)
def test_bad_settings_are_refused_at_registration(
    tmp_path: Path, block: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        showme_sms_clickatell.showme_register_sms_providers(
            lambda provider: None, settings(tmp_path, block)
        )
