"""The fake Clickatell for this package's tests: started per test, stopped in a finalizer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plugins.showme_sms_clickatell.fake_clickatell import FakeClickatell


@pytest.fixture
def fake() -> Iterator[FakeClickatell]:
    server = FakeClickatell().start()
    try:
        yield server
    finally:
        server.stop()
