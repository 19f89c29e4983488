"""Fixtures of the Vonage plugin's tests: the fake Vonage, and the provider pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from showme_sms_vonage import VonageSms
from tests.plugins.showme_sms_vonage.fake_vonage import API_KEY, API_SECRET, FakeVonage


@pytest.fixture
def fake() -> Iterator[FakeVonage]:
    """A fake Vonage on a random port of 127.0.0.1, stopped after the test."""
    server = FakeVonage().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vonage(fake: FakeVonage) -> VonageSms:
    return VonageSms(API_KEY, API_SECRET, "ShowMe", base_url=fake.url, timeout=2.0)
