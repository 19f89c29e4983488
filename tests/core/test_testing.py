"""The test kit plugin authors get (``showme_core.testing``): the caller's phone, waiting for
plugin reactions, the feed backlog, and the snippet in docs/plugins.md, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from showme_core.events import Event
from showme_core.hookspecs import hookimpl
from showme_core.testing import Tenant, phone_for, read_feed_backlog, settle
from showme_core.testing_phone import SocketClosed
from tests import pictures

ROOT = Path(__file__).resolve().parents[2]


class SlowConsumer:
    name = "slow-test-consumer"

    def __init__(self) -> None:
        self.types: list[str] = []

    async def deliver(self, event: Event) -> None:
        import asyncio

        await asyncio.sleep(0.05)
        self.types.append(event.type)


class Registers:
    def __init__(self, consumer: SlowConsumer) -> None:
        self.consumer = consumer

    @hookimpl
    def showme_register_event_consumers(self, register: Callable[[Any], None]) -> None:
        register(self.consumer)


@pytest.fixture
def consumer() -> SlowConsumer:
    return SlowConsumer()


@pytest.fixture
def showme_plugins(consumer: SlowConsumer) -> list[object]:
    return [Registers(consumer)]


async def test_a_phone_opens_sends_and_goes_live_and_settle_waits_for_plugins(
    tenant: Tenant, showme: Any, showme_app: Any, consumer: SlowConsumer
) -> None:
    created = await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123456"})
    phone = phone_for(showme_app, created.json()["link"])
    opened = await phone.open()
    assert opened["device"] == "holder"
    sent = await phone.upload(pictures.jpeg(pictures.scene(64, 48)))
    assert sent.status_code == 201, sent.text
    async with phone.live():
        pass
    await settle(showme)
    # In commit order; the SMS is sent in the background, so its status may come anywhere.
    assert "sms.status" in consumer.types
    assert [t for t in consumer.types if t != "sms.status"] == [
        "credits.changed",  # the SMS charged, in the invite's own transaction
        "invite.created",
        "invite.opened",
        "media.created",
        "stream.requested",
        "stream.connected",
        "stream.ended",
    ]
    # Another phone is refused its seat, and told why.
    other = phone_for(showme_app, created.json()["link"])
    async with other.signaling() as socket:
        refused = await socket.receive()
        assert refused["type"] == "refused" and refused["code"] == "another_device"
        with pytest.raises(SocketClosed) as closed:
            await socket.receive()
        assert closed.value.code == 4409


@pytest.mark.parametrize("run", range(5))
async def test_the_feed_backlog_as_the_last_await_lets_the_test_end(
    tenant: Tenant, showme_app: Any, run: int
) -> None:
    await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123456", "send_sms": False})
    events = await read_feed_backlog(showme_app, {"Authorization": f"Bearer {tenant.api_key}"})
    assert [event["type"] for event in events] == ["invite.created"]


def test_the_conftest_in_the_docs_runs_as_written(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    section = docs.split("## Testing a plugin", 1)[1]
    snippet = re.search(r"```python\n# conftest.py\n(.*?)```", section, re.DOTALL)
    assert snippet, "docs/plugins.md lost its conftest.py snippet"
    (tmp_path / "conftest.py").write_text(snippet.group(1))
    usage = re.search(r"```python\n# test_pigeon.py\n(.*?)```", section, re.DOTALL)
    assert usage, "docs/plugins.md lost its example test"
    (tmp_path / "test_pigeon.py").write_text(usage.group(1))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout
