"""Durable event consumers: each organisation's events in commit order, at least once, from a
cursor in the store; a consumer that fails gets the same event again, and a service killed
mid-stream resumes where its consumer stopped (docs/plugins.md, "Durable consumers")."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from showme_core import consumers
from showme_core.events import Event
from showme_core.hookspecs import hookimpl
from showme_core.testing import Tenant, settle
from tests.conftest import LiveServer, wait_for


class Recorder:
    """A consumer that refuses some events a few times (a crash, a CAD that is down)."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []
        self.refuse: dict[str, int] = {}

    async def deliver(self, event: Event) -> None:
        if self.refuse.get(event.type, 0) > 0:
            self.refuse[event.type] -= 1
            raise RuntimeError("not now")
        self.seen.append((event.organisation_id, event.id, event.type))


class Registers:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @hookimpl
    def showme_register_event_consumers(self, register: Callable[[Any], None]) -> None:
        register(self.recorder)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    monkeypatch.setattr(consumers, "RETRY_FIRST_SECONDS", 0.05)
    monkeypatch.setattr(consumers, "POLL_SECONDS", 0.1)
    return Recorder()


@pytest.fixture
def showme_plugins(recorder: Recorder) -> list[object]:
    return [Registers(recorder)]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_events_arrive_in_order_and_a_failure_is_retried_not_skipped(
    tenant: Tenant, showme: Any, recorder: Recorder
) -> None:
    recorder.refuse["invite.created"] = 2  # the first invite's creation fails twice
    made = []
    for n in range(3):
        created = await tenant.cad.post(
            "/api/v1/invites", json={"phone": f"+3247012345{n}", "send_sms": False}
        )
        made.append(created.json()["id"])
        ended = await tenant.cad.post(f"/api/v1/invites/{made[-1]}/end")
        assert ended.status_code == 200
    mine = lambda: [e for e in recorder.seen if e[0] == tenant.org.id]  # noqa: E731
    await until(lambda: len(mine()) == 6)
    ids = [event_id for _org, event_id, _type in mine()]
    assert ids == sorted(ids) and len(set(ids)) == 6  # in order, none lost, none twice
    types = [event_type for _org, _id, event_type in mine()]
    assert types == ["invite.created", "invite.ended"] * 3
    cursors = await showme.consumers.cursors(tenant.org.id)
    assert cursors["recorder"] == ids[-1]


async def test_each_organisation_has_its_own_lane(
    make_tenant: Any, showme: Any, recorder: Recorder
) -> None:
    """A consumer failing for one organisation's event does not hold another's."""
    north, south = await make_tenant(), await make_tenant()
    recorder.refuse["credits.changed"] = 1_000_000  # north's stays refused
    async with showme.transaction() as tx:
        await tx.event(north.org.id, "credits.changed", {"credits": 1})
    created = await south.cad.post(
        "/api/v1/invites", json={"phone": "+32470123450", "send_sms": False}
    )
    await until(lambda: any(e[0] == south.org.id for e in recorder.seen))
    assert [e[2] for e in recorder.seen if e[0] == south.org.id] == ["invite.created"]
    assert not any(e[0] == north.org.id for e in recorder.seen)
    assert created.status_code == 201


def journal_lines(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    return [
        (int(event_id), event_type)
        for _org, event_id, event_type in (line.split() for line in path.read_text().splitlines())
    ]


def test_a_consumer_killed_mid_stream_resumes_in_order(
    start_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """kill -9 while events flow; after a restart the consumer gets everything from where its
    cursor was, in order: at least once, with nothing skipped and nothing overtaken."""
    journal = tmp_path / "journal.txt"
    settings = {"pigeon": {"journal": str(journal), "fail_first": ["invite.ended"], "delay": 0.2}}
    server = start_server(SHOWME_PLUGINS="pigeon", SHOWME_PLUGIN_SETTINGS=json.dumps(settings))
    server.cli("org", "create", "--slug", "north", "--name", "North", "--region", "BE")
    key = server.cli("apikey", "create", "--org", "north", "--name", "CAD").split()[-1]
    headers = {"Authorization": f"Bearer {key}"}

    def burst(client: httpx.Client, count: int) -> int:
        made = 0
        for n in range(count):
            try:
                created = client.post(
                    "/api/v1/invites", json={"phone": f"+324701{n:05d}", "send_sms": False}
                )
                if created.status_code == 201:
                    client.post(f"/api/v1/invites/{created.json()['id']}/end")
                    made += 1
            except httpx.HTTPError:
                break  # the service went away under us
        return made

    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        burst(client, 10)
        wait_for(lambda: len(journal_lines(journal)) >= 5, 20, "the journal to start")
        server.kill()  # mid-stream: the slow consumer is far behind the commits
    assert len(journal_lines(journal)) < 20
    before_kill = journal_lines(journal)
    server.restart()
    server.cli("credits", "add", "--org", "north", "--amount", "5")  # from another process
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        burst(client, 5)
        last = int(client.get("/api/v1/invites").json()["last_event_id"])
    # The killed process's lease on the cursor lapses first (15 s): then delivery goes on.
    wait_for(lambda: max((i for i, _ in journal_lines(journal)), default=0) >= last, 45, "all")
    seen = journal_lines(journal)
    ids = [event_id for event_id, _type in seen]
    # Every event, none skipped.
    assert set(ids) == set(range(1, last + 1)), (ids, last)
    # In order, except one rewind after the restart to where the cursor was (at least once).
    rewinds = [n for n in range(1, len(ids)) if ids[n] <= ids[n - 1]]
    assert len(rewinds) <= 1, ids
    if rewinds:
        assert rewinds[0] >= len(before_kill)  # only what came after the kill repeats
    # Per invite, its creation before its end, always.
    assert "credits.changed" in [event_type for _id, event_type in seen]
    first_seen: dict[int, str] = {}
    for event_id, event_type in seen:
        first_seen.setdefault(event_id, event_type)
    order = [first_seen[i] for i in sorted(first_seen)]
    assert order.count("invite.created") == order.count("invite.ended")


class Tagged:
    """One instance's copy of a consumer, writing to a log both copies share."""

    name = "shared"

    def __init__(self, tag: str, log: list[tuple[str, int, float, float]], org_id: str) -> None:
        self.tag = tag
        self.log = log
        self.org_id = org_id

    async def deliver(self, event: Event) -> None:
        if event.organisation_id != self.org_id:
            return  # the history other tests left in the shared store
        began = time.monotonic()
        await asyncio.sleep(0.02)
        self.log.append((self.tag, event.id, began, time.monotonic()))


async def test_an_instance_that_lost_its_lease_stops_delivering(
    tenant: Tenant, showme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Instance A stalls after a delivery (its store write is slow) past its lease; B takes over.
    A must not come back with newer events while B delivers: one deliverer at a time, in order,
    the event in flight at the handover at most twice."""
    monkeypatch.setattr(consumers, "LEASE_SECONDS", 0.6)
    monkeypatch.setattr(consumers, "DELIVER_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(consumers, "RENEW_BEFORE_SECONDS", 0.3)
    monkeypatch.setattr(consumers, "POLL_SECONDS", 0.05)
    for n in range(6):
        created = await tenant.cad.post(
            "/api/v1/invites", json={"phone": f"+3247012345{n}", "send_sms": False}
        )
        assert created.status_code == 201
    first = (await showme.events_after(tenant.org.id, 0, limit=1))[0].id
    log: list[tuple[str, int, float, float]] = []
    a = consumers.Consumers(showme, {"shared": Tagged("A", log, tenant.org.id)})
    b = consumers.Consumers(showme, {"shared": Tagged("B", log, tenant.org.id)})
    advance = a._advance
    stalled = asyncio.Event()

    async def slow_advance(name: str, organisation_id: str, event_id: int) -> None:
        if organisation_id == tenant.org.id and event_id == first + 2 and not stalled.is_set():
            stalled.set()
            await asyncio.sleep(1.5)  # well past the lease
        await advance(name, organisation_id, event_id)

    monkeypatch.setattr(a, "_advance", slow_advance)
    a.start()
    await until(lambda: stalled.is_set())
    b.start()
    try:
        last = first + 5
        await until(lambda: any(i == last for _t, i, _b, _e in log), 15)
        await asyncio.sleep(1.0)  # long enough for a stale A to deliver again, if it would
    finally:
        await a.stop()
        await b.stop()
    mine = sorted((began, ended, tag, i) for tag, i, began, ended in log)
    ids = [i for _b, _e, _t, i in mine]
    assert set(ids) == set(range(first, last + 1)), ids
    assert ids == sorted(ids), ids  # never back to an older event
    assert len(ids) - len(set(ids)) <= 1, ids  # the event in flight at the handover, once more
    assert {tag for _b, _e, tag, i in mine if i > first + 2} == {"B"}
    for (_b1, ended, _t1, _i1), (began, _e2, _t2, _i2) in itertools.pairwise(mine):
        assert began >= ended, mine  # one deliverer at a time


async def test_idle_lanes_do_not_write(
    make_tenant: Any, showme: Any, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumer with nothing to deliver costs a read per organisation and poll, never a
    write transaction (each would be a synced commit competing with uploads)."""
    tenants = [await make_tenant() for _ in range(5)]
    for tenant in tenants:
        await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123450", "send_sms": False})
    await until(lambda: {e[0] for e in recorder.seen} >= {t.org.id for t in tenants})
    await settle(showme)
    writes = 0
    transaction = showme.db.transaction

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal writes
        writes += 1
        return transaction(*args, **kwargs)

    monkeypatch.setattr(showme.db, "transaction", counted)
    await asyncio.sleep(1.0)  # 10 polls of every lane (POLL_SECONDS is 0.1 here)
    assert writes == 0


class Wallboard:
    """A minimal CAD adapter: the PSAP's wall board, shown each invite's latest state."""

    name = "wallboard"

    def __init__(self) -> None:
        self.board: dict[str, str] = {}

    async def deliver(self, event: Event) -> None:
        if event.invite_id is not None and event.type.startswith("invite."):
            self.board[event.invite_id] = event.type.removeprefix("invite.")


class RegistersAdapter:
    def __init__(self, *adapters: Any) -> None:
        self.adapters = adapters

    @hookimpl
    def showme_register_cad_adapters(self, register: Callable[[Any], None]) -> None:
        for adapter in self.adapters:
            register(adapter)


class TestACadAdapter:
    @pytest.fixture
    def wallboard(self) -> Wallboard:
        return Wallboard()

    @pytest.fixture
    def showme_plugins(self, wallboard: Wallboard) -> list[object]:
        return [RegistersAdapter(wallboard)]

    async def test_is_delivered_to_like_a_durable_consumer(
        self, tenant: Tenant, showme: Any, wallboard: Wallboard
    ) -> None:
        created = await tenant.cad.post(
            "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
        )
        invite_id = created.json()["id"]
        await tenant.cad.post(f"/api/v1/invites/{invite_id}/end")
        await settle(showme)
        assert wallboard.board == {invite_id: "ended"}
        assert "wallboard" in await showme.consumers.cursors(tenant.org.id)


def test_an_adapter_and_a_consumer_may_not_share_a_name(showme_settings: Any) -> None:
    from showme_core.app import create_app
    from showme_core.plugins import PluginError

    class Named:
        name = "recorder"

        async def deliver(self, event: Event) -> None:
            return None

    with pytest.raises(PluginError, match="both named"):
        create_app(showme_settings, plugins=[Registers(Named()), RegistersAdapter(Named())])
    with pytest.raises(PluginError, match="is not a CAD adapter"):
        create_app(showme_settings, plugins=[RegistersAdapter(object())])


class Newcomer:
    """A consumer that wants only what happens from now on."""

    name = "newcomer"
    start = "latest"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def deliver(self, event: Event) -> None:
        self.seen.append((event.organisation_id, event.type))


async def test_starting_at_the_latest_skips_history_but_not_a_new_organisation(
    make_tenant: Any, showme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "POLL_SECONDS", 5.0)  # the new lane comes late
    old = await make_tenant()
    await old.cad.post("/api/v1/invites", json={"phone": "+32470123450", "send_sms": False})
    newcomer = Newcomer()
    lanes = consumers.Consumers(showme, {"newcomer": newcomer})
    lanes.start()
    try:
        deadline = time.monotonic() + 10
        while "newcomer" not in await lanes.cursors(old.org.id):  # its lane began
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        fresh = await make_tenant()  # made while the consumer runs, before its lane exists
        await fresh.cad.post("/api/v1/invites", json={"phone": "+32470123451", "send_sms": False})
        await old.cad.post("/api/v1/invites", json={"phone": "+32470123452", "send_sms": False})
        await until(lambda: (fresh.org.id, "invite.created") in newcomer.seen, 15)
        await until(lambda: (old.org.id, "invite.created") in newcomer.seen, 15)
    finally:
        await lanes.stop()
    # One invite of the old organisation's two: its history was skipped.
    assert [t for o, t in newcomer.seen if o == old.org.id].count("invite.created") == 1
    assert "invite.created" in [t for o, t in newcomer.seen if o == fresh.org.id]
