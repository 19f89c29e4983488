"""Fixtures for the Twilio SMS plugin's tests: the local fake Twilio and a callback receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plugins.showme_sms_twilio.fake_twilio import CallbackReceiver, FakeTwilio


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    try:
        yield server
    finally:
        server.close()
