"""The console feed: order and resumes, fan-out off the write path, caps, credential re-checks.

In-process tests run on both stores; the real-server tests cover what the transport decides
(chunked streams over TCP, a revocation by another process, commit latency with feeds open).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from showme_core.accounts import create_api_key, revoke_api_key
from showme_core.app import ShowMe
from showme_core.config import Settings
from showme_core.events import append_event, last_event_id
from showme_core.feeds import POLL_SECONDS, REFUSED_RETRY_AFTER, WINDOW_EVENTS
from showme_core.store.schema import users
from showme_core.testing import Tenant, settings_for_tests
from tests.conftest import LiveServer, wait_for
from tests.sse import FeedConnection, SseEvent, SseParser


@pytest.fixture
def showme_settings(
    request: pytest.FixtureRequest, tmp_path: Path, showme_database_url: str
) -> Settings:
    """The test app's settings; a test may change some with ``indirect`` parametrisation."""
    return settings_for_tests(tmp_path, showme_database_url, **getattr(request, "param", {}))


class InProcessFeed:
    """``GET /api/v1/events`` spoken over ASGI to the in-process app (httpx's transport cannot
    stream an endless answer). Clearing ``reading`` makes a client that stops reading: the
    server's next write waits, as it does on a full TCP window."""

    def __init__(self, app: Any, headers: dict[str, str], query: str = "") -> None:
        self._app = app
        self._scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/v1/events",
            "raw_path": b"/api/v1/events",
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"showme.test"),
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("showme.test", 80),
        }
        self.reading = asyncio.Event()
        self.reading.set()
        self.status = 0
        self.headers: dict[str, str] = {}
        self._parser = SseParser()
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._ended = False
        self._asked = False
        self._gone = asyncio.Event()
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcessFeed:
        self._task = asyncio.create_task(self._app(self._scope, self._receive, self._send))
        await asyncio.wait_for(self._started.wait(), 10)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
            self._started.set()
        elif message["type"] == "http.response.body":
            await self.reading.wait()
            if message.get("body"):
                self._chunks.put_nowait(message["body"])
            if not message.get("more_body"):
                self._chunks.put_nowait(None)

    @property
    def keep_alives(self) -> int:
        return self._parser.keep_alives

    async def next_event(self, timeout: float = 10.0) -> SseEvent | None:
        """The next event; None once the server closed the stream."""
        async with asyncio.timeout(timeout):
            while True:
                event = self._parser.next_event()
                if event is not None or self._ended:
                    return event
                chunk = await self._chunks.get()
                if chunk is None:
                    self._ended = True
                else:
                    self._parser.feed(chunk)

    async def ids(self, count: int, timeout: float = 20.0) -> list[int]:
        """The ids of the next ``count`` events."""
        found: list[int] = []
        async with asyncio.timeout(timeout):
            while len(found) < count:
                event = await self.next_event(timeout)
                assert event is not None and event.id is not None, (found, event)
                found.append(event.id)
        return found

    async def body(self) -> dict[str, Any]:
        """A refusal's JSON body."""
        data = b""
        while (chunk := await asyncio.wait_for(self._chunks.get(), 10)) is not None:
            data += chunk
        self._ended = True
        answer: dict[str, Any] = json.loads(data)
        return answer

    async def close(self) -> None:
        self._gone.set()
        self.reading.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)


def key_headers(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def cookie_headers(tenant: Tenant) -> dict[str, str]:
    return {"cookie": "; ".join(f"{k}={v}" for k, v in tenant.client.cookies.items())}


async def commit_events(
    showme: ShowMe, organisation_id: str, count: int, per_transaction: int = 1
) -> list[int]:
    """Commit ``count`` events, ``per_transaction`` in each transaction; their ids."""
    ids: list[int] = []
    while len(ids) < count:
        async with showme.transaction() as tx:
            for _ in range(min(per_transaction, count - len(ids))):
                ids.append(
                    (await tx.event(organisation_id, "credits.changed", {"credits": len(ids)})).id
                )
    return ids


async def newest_id(showme: ShowMe, organisation_id: str) -> int:
    async with showme.db.read() as db:
        return await last_event_id(db, organisation_id)


def sample(showme: ShowMe, name: str, **labels: str) -> float:
    return showme.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_events_in_order_and_nothing_lost_across_a_resume_longer_than_the_window(
    showme: ShowMe, tenant: Tenant, showme_app: Any
) -> None:
    org = tenant.org.id
    start = await newest_id(showme, org)
    backlog = await commit_events(showme, org, WINDOW_EVENTS * 2 + 37, per_transaction=50)
    async with InProcessFeed(showme_app, key_headers(tenant.api_key), f"after={start}") as feed:
        assert feed.status == 200
        assert await feed.ids(len(backlog)) == backlog
        writer = asyncio.create_task(commit_events(showme, org, 40))
        seen = await feed.ids(20)
        live = await writer
        assert seen == live[:20]
    # The console is away while more than a window of events is committed.
    missed = await commit_events(showme, org, WINDOW_EVENTS + 50, per_transaction=25)
    backlog_reads = sample(showme, "showme_event_feed_store_reads_total", by="backlog")
    headers = {**key_headers(tenant.api_key), "last-event-id": str(seen[-1])}
    async with InProcessFeed(showme_app, headers) as feed:
        resumed = await feed.ids(len(live) - 20 + len(missed))
    assert resumed == live[20:] + missed
    everything = backlog + seen + resumed
    assert everything == list(range(start + 1, start + 1 + len(everything)))
    # Behind the window, the resumed feed read its backlog from the store itself.
    assert sample(showme, "showme_event_feed_store_reads_total", by="backlog") > backlog_reads


async def test_a_client_that_stops_reading_holds_no_memory_and_misses_nothing(
    showme: ShowMe, tenant: Tenant, showme_app: Any
) -> None:
    org = tenant.org.id
    async with (
        InProcessFeed(showme_app, key_headers(tenant.api_key)) as slow,
        InProcessFeed(showme_app, cookie_headers(tenant)) as other,
    ):
        first = await commit_events(showme, org, 3)
        assert await slow.ids(3) == first
        assert await other.ids(3) == first
        slow.reading.clear()
        backlog_reads = sample(showme, "showme_event_feed_store_reads_total", by="backlog")
        burst = await commit_events(showme, org, WINDOW_EVENTS * 2, per_transaction=8)
        # The other console is not held up by the stalled one...
        assert await other.ids(len(burst)) == burst
        # ...and the organisation's memory stays one window, however far behind a client is.
        assert showme.feeds.window_size(org) <= WINDOW_EVENTS
        slow.reading.set()
        assert await slow.ids(len(burst)) == burst
    # Left behind by the window, it read the rest from the store itself.
    assert sample(showme, "showme_event_feed_store_reads_total", by="backlog") > backlog_reads


@pytest.mark.parametrize(
    "showme_settings",
    [{"max_feeds_per_credential": 40, "max_feeds_per_organisation": 40}],
    indirect=True,
)
async def test_one_store_read_per_commit_whatever_the_number_of_feeds(
    showme: ShowMe, tenant: Tenant, showme_app: Any
) -> None:
    org = tenant.org.id
    feeds = [InProcessFeed(showme_app, key_headers(tenant.api_key)) for _ in range(30)]
    for feed in feeds:
        await feed.__aenter__()
    try:
        first = await commit_events(showme, org, 1)
        for feed in feeds:
            assert await feed.ids(1) == first
        reads = sample(showme, "showme_event_feed_store_reads_total", by="reader")
        backlog = sample(showme, "showme_event_feed_store_reads_total", by="backlog")
        started = time.monotonic()
        for _ in range(10):
            committed = await commit_events(showme, org, 1)
            for feed in feeds:
                assert await feed.ids(1) == committed
        polls = (time.monotonic() - started) / POLL_SECONDS + 1
        extra = sample(showme, "showme_event_feed_store_reads_total", by="reader") - reads
        # One read per commit (plus the reader's own polls), not one per feed: 30 feeds
        # reading for themselves would have made 300.
        assert 10 <= extra <= 10 + polls
        assert sample(showme, "showme_event_feed_store_reads_total", by="backlog") == backlog
    finally:
        for feed in feeds:
            await feed.close()


async def test_events_no_bus_announced_arrive_within_a_poll(
    showme: ShowMe, tenant: Tenant, showme_app: Any
) -> None:
    org = tenant.org.id
    async with InProcessFeed(showme_app, key_headers(tenant.api_key)) as feed:
        announced = await commit_events(showme, org, 1)
        assert await feed.ids(1) == announced
        # Committed as another process would: nothing in this one is told.
        async with showme.db.transaction() as conn:
            quiet = await append_event(conn, org, "test.quiet", {})
        committed = time.monotonic()
        assert await feed.ids(1, timeout=POLL_SECONDS + 5) == [quiet.id]
        assert time.monotonic() - committed < POLL_SECONDS + 1.5


@pytest.mark.parametrize(
    "showme_settings",
    [{"max_feeds_per_credential": 2, "max_feeds_per_organisation": 3}],
    indirect=True,
)
async def test_feeds_are_capped_per_credential_and_per_organisation(
    showme: ShowMe, make_tenant: Any, showme_app: Any
) -> None:
    tenant: Tenant = await make_tenant()
    async with showme.transaction() as tx:
        _key, second_key = await create_api_key(tx.conn, organisation_id=tenant.org.id, name="b")
    by_key = key_headers(tenant.api_key)
    first = InProcessFeed(showme_app, by_key)
    async with InProcessFeed(showme_app, by_key) as second:
        await first.__aenter__()
        assert (first.status, second.status) == (200, 200)
        async with InProcessFeed(showme_app, by_key) as third:
            assert third.status == 429
            assert third.headers["retry-after"] == str(REFUSED_RETRY_AFTER)
            error = (await third.body())["error"]
            assert error["code"] == "too_many_feeds"
            assert "API key already has 2 event feeds open" in error["message"]
        # Another credential of the organisation still gets the organisation's last place.
        async with InProcessFeed(showme_app, cookie_headers(tenant)) as dispatcher:
            assert dispatcher.status == 200
            async with InProcessFeed(showme_app, key_headers(second_key)) as refused:
                assert refused.status == 429
                error = (await refused.body())["error"]
                assert error["code"] == "too_many_feeds"
                assert "organisation already has 3 event feeds open" in error["message"]
            # Other organisations are not counted against this one.
            other: Tenant = await make_tenant()
            async with InProcessFeed(showme_app, key_headers(other.api_key)) as elsewhere:
                assert elsewhere.status == 200
            # A closed feed gives its place back at once.
            await first.close()
            assert showme.feeds.open_count(tenant.org.id) == 2
            async with InProcessFeed(showme_app, key_headers(second_key)) as admitted:
                assert admitted.status == 200
    assert showme.feeds.open_count() == 0
    assert sample(showme, "showme_event_feeds_refused_total", limit="credential") == 1
    assert sample(showme, "showme_event_feeds_refused_total", limit="organisation") == 1


async def events_until_ended(feed: InProcessFeed, timeout: float) -> list[SseEvent]:
    """Read until the ``ended`` event (included) and the stream's end."""
    got: list[SseEvent] = []
    async with asyncio.timeout(timeout):
        while (event := await feed.next_event(timeout)) is not None:
            got.append(event)
            if event.event == "ended":
                assert await feed.next_event(timeout) is None  # and the stream closes
                return got
    raise AssertionError(f"the feed closed without an ended event after {len(got)} events")


async def tick_every(showme: ShowMe, organisation_id: str, seconds: float) -> None:
    while True:
        await commit_events(showme, organisation_id, 1)
        await asyncio.sleep(seconds)


@pytest.mark.parametrize(
    "showme_settings",
    [{"feed_recheck_seconds": 0.5, "sse_heartbeat_seconds": 60.0}],
    indirect=True,
)
async def test_refused_credentials_end_their_feeds_while_events_flow(
    showme: ShowMe, tenant: Tenant, showme_app: Any
) -> None:
    org = tenant.org.id
    async with showme.transaction() as tx:
        key, secret = await create_api_key(tx.conn, organisation_id=org, name="revoked soon")
    ticking = asyncio.create_task(tick_every(showme, org, 0.05))
    try:
        async with (
            InProcessFeed(showme_app, key_headers(secret)) as by_key,
            InProcessFeed(showme_app, cookie_headers(tenant)) as by_cookie,
            InProcessFeed(showme_app, key_headers(tenant.api_key)) as untouched,
        ):
            await by_key.ids(3)
            await by_cookie.ids(3)
            async with showme.transaction() as tx:
                assert await revoke_api_key(tx.conn, org, key.id)
            revoked = time.monotonic()
            flowed = await events_until_ended(by_key, 5)
            assert time.monotonic() - revoked < 0.5 + 2
            assert len(flowed) > 1  # events kept coming until the check ended it
            # The same re-check ends a deactivated user's feed (and will end a revoked session).
            async with showme.transaction() as tx:
                await tx.conn.execute(
                    update(users).where(users.c.email == tenant.email).values(active=False)
                )
            await events_until_ended(by_cookie, 5)
            # Other credentials keep their feed, and no heartbeat had a part in this.
            last = (await untouched.ids(1))[0]
            assert (await untouched.ids(1))[0] == last + 1
            assert by_key.keep_alives == by_cookie.keep_alives == 0
    finally:
        ticking.cancel()
    assert sample(showme, "showme_event_feed_credential_checks_total", result="refused") == 2


@pytest.mark.parametrize("showme_settings", [{"feed_recheck_seconds": 3600.0}], indirect=True)
async def test_credentials_are_checked_once_per_round_however_many_feeds_they_hold(
    showme: ShowMe, tenant: Tenant, showme_app: Any
) -> None:
    async with showme.transaction() as tx:
        _key, other_key = await create_api_key(tx.conn, organisation_id=tenant.org.id, name="b")
    opened = [
        *(InProcessFeed(showme_app, key_headers(tenant.api_key)) for _ in range(3)),
        *(InProcessFeed(showme_app, cookie_headers(tenant)) for _ in range(2)),
        InProcessFeed(showme_app, key_headers(other_key)),
    ]
    for feed in opened:
        await feed.__aenter__()
    try:
        assert all(feed.status == 200 for feed in opened)
        before = sample(showme, "showme_event_feed_credential_checks_total", result="ok")
        await showme.feeds.recheck()
        after = sample(showme, "showme_event_feed_credential_checks_total", result="ok")
        assert after - before == 3  # two keys and one session cookie, not six feeds
    finally:
        for feed in opened:
            await feed.close()


# Real server: the transport, another process's revocation, and commit latency.


def seed(server: LiveServer) -> str:
    server.cli("org", "create", "--slug", "feed", "--name", "Feed PSAP", "--region", "BE")
    return server.cli("apikey", "create", "--org", "feed", "--name", "cad").strip().splitlines()[-1]


def new_key(server: LiveServer, name: str) -> tuple[str, str]:
    """An API key of the ``feed`` organisation: (id, secret)."""
    lines = server.cli("apikey", "create", "--org", "feed", "--name", name).strip().splitlines()
    return lines[0].split()[2], lines[-1]


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse SSE lines into events, keeping the ``id:`` field."""
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith("id: "):
            current["sse_id"] = int(line[4:])
        elif line.startswith("data: "):
            current.update(json.loads(line[6:]))
        elif line == "" and current:
            yield current
            current = {}


def invite(client: httpx.Client, n: int) -> str:
    answer = client.post("/api/v1/invites", json={"phone": f"+3247000001{n}", "send_sms": False})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_feed_resumes_after_a_dropped_connection(start_server: Any) -> None:
    server: LiveServer = start_server()
    key = seed(server)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        first = invite(client, 0)
        received: list[dict[str, Any]] = []
        with client.stream("GET", "/api/v1/events", params={"after": 0}) as feed:
            assert feed.headers["content-type"].startswith("text/event-stream")
            stream = events(feed.iter_lines())
            received.append(next(stream))
            assert received[0]["invite_id"] == first
            # Live: an invite made now arrives on the open feed.
            second = invite(client, 1)
            received.append(next(stream))
            assert received[1]["invite_id"] == second
        # The connection dropped. Three more invites happen while the console is away.
        missed = [invite(client, n) for n in range(2, 5)]
        last_seen = received[-1]["sse_id"]
        with client.stream(
            "GET", "/api/v1/events", headers={"Last-Event-ID": str(last_seen)}
        ) as feed:
            stream = events(feed.iter_lines())
            resumed = [next(stream) for _ in missed]
    assert [e["invite_id"] for e in resumed] == missed
    ids = [e["sse_id"] for e in received + resumed]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # nothing lost, nothing twice
    assert all(e["type"] == "invite.created" for e in received + resumed)


def test_feed_without_resume_point_starts_at_now(start_server: Any) -> None:
    server: LiveServer = start_server()
    key = seed(server)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        invite(client, 0)
        with client.stream("GET", "/api/v1/events") as feed:
            lines = feed.iter_lines()
            assert next(lines).startswith("retry:")
            fresh = invite(client, 1)
            assert next(events(lines))["invite_id"] == fresh
        refused = client.get("/api/v1/events", headers={"Last-Event-ID": "nonsense"})
        assert refused.status_code == 422


def test_no_token_or_key_in_the_server_log(start_server: Any) -> None:
    server: LiveServer = start_server()
    key = seed(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.post(
            "/api/v1/invites",
            json={"phone": "+32470123456"},
            headers={"Authorization": f"Bearer {key}"},
        )
        token = answer.json()["link"].split("#", 1)[1]
        assert client.post("/api/v1/caller/open", headers={"X-ShowMe-Link": token}).is_success
        client.post("/api/v1/caller/open", headers={"X-ShowMe-Link": token + "x"})
    wait_for(lambda: "sms kept in outbox" in server.log_text(), 10, "the outbox log line")
    log = server.log_text()
    assert '"path": "/api/v1/caller/open"' in log
    assert token not in log
    assert key not in log


async def test_events_committed_by_another_process_reach_the_feed(start_server: Any) -> None:
    server: LiveServer = start_server(SHOWME_SSE_HEARTBEAT_SECONDS="30")
    key = seed(server)
    feed = await FeedConnection.open(server.url, {"Authorization": f"Bearer {key}"})
    try:
        assert feed.status == 200
        await asyncio.to_thread(server.cli, "credits", "add", "--org", "feed", "--amount", "5")
        committed = time.monotonic()
        event = await asyncio.wait_for(feed.next_event(), POLL_SECONDS + 5)
    finally:
        await feed.close()
    assert event is not None and event.data["type"] == "credits.changed"
    assert event.received_at - committed < POLL_SECONDS + 1.5


def unthrottled_config(directory: Path) -> str:
    """A configuration file without invite rate limits: these tests make many invites."""
    path = directory / "showme.toml"
    path.write_text(
        "invite_rate_per_sender = [[1000000, 60.0]]\n"
        "invite_rate_per_organisation = [[1000000, 60.0]]\n"
    )
    return str(path)


async def invite_every(
    url: str, secret: str, seconds: float, answers: list[float], count: int | None = None
) -> None:
    """Create an invite (one event each) every ``seconds``, ``count`` of them or until
    cancelled; record each answer's latency."""
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        while count is None or len(answers) < count:
            sent = time.monotonic()
            answer = await client.post(
                "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
            )
            assert answer.status_code == 201, answer.text
            answers.append(time.monotonic() - sent)
            await asyncio.sleep(seconds)


async def until_ended(feed: FeedConnection, timeout: float) -> tuple[list[SseEvent], float]:
    """Events until ``ended`` (included) and when it came; asserts the stream then closes."""
    got: list[SseEvent] = []
    async with asyncio.timeout(timeout):
        while (event := await feed.next_event()) is not None:
            got.append(event)
            if event.event == "ended":
                ended_at = time.monotonic()
                assert await feed.next_event() is None
                return got, ended_at
    raise AssertionError(f"the feed closed without an ended event after {len(got)} events")


async def test_a_key_revoked_by_the_cli_loses_its_feed_while_events_flow(
    start_server: Any, tmp_path: Path
) -> None:
    server: LiveServer = start_server(
        SHOWME_CONFIG=unthrottled_config(tmp_path), SHOWME_SSE_HEARTBEAT_SECONDS="30"
    )
    writer_key = seed(server)
    key_id, secret = new_key(server, "revoked soon")
    answers: list[float] = []
    feed = await FeedConnection.open(server.url, {"Authorization": f"Bearer {secret}"})
    writer = asyncio.create_task(invite_every(server.url, writer_key, 0.1, answers))
    try:
        assert feed.status == 200
        for _ in range(3):
            assert (await asyncio.wait_for(feed.next_event(), 10)) is not None
        revoking = time.monotonic()
        await asyncio.to_thread(server.cli, "apikey", "revoke", "--org", "feed", key_id)
        flowed, ended_at = await until_ended(feed, 20)
    finally:
        writer.cancel()
        await feed.close()
    # From the start of the command (the revocation commits inside it) to the end of the feed.
    print(f"revoked key: feed ended {ended_at - revoking:.1f} s after the command started")
    assert ended_at - revoking <= 15
    assert len(flowed) >= 10  # events kept flowing: the re-check does not wait for a quiet feed
    assert feed.keep_alives == 0
    again = await FeedConnection.open(server.url, {"Authorization": f"Bearer {secret}"})
    assert again.status == 401
    await again.close()


async def test_an_expired_session_loses_its_feed_while_events_flow(
    start_server: Any, tmp_path: Path
) -> None:
    max_age = 3
    server: LiveServer = start_server(
        SHOWME_CONFIG=unthrottled_config(tmp_path),
        SHOWME_SSE_HEARTBEAT_SECONDS="30",
        SHOWME_SESSION_MAX_AGE_SECONDS=str(max_age),
    )
    writer_key = seed(server)
    password = "a long enough test password"
    user = ["--org", "feed", "--email", "d@feed.test", "--name", "D", "--password-stdin"]
    server.cli("user", "create", *user, stdin=password + "\n")
    async with httpx.AsyncClient(base_url=server.url, headers={"Origin": server.url}) as client:
        signed_in = time.monotonic()
        answer = await client.post(
            "/api/v1/session", json={"email": "d@feed.test", "password": password}
        )
        assert answer.status_code == 200, answer.text
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    answers: list[float] = []
    feed = await FeedConnection.open(server.url, {"Cookie": cookie})
    writer = asyncio.create_task(invite_every(server.url, writer_key, 0.1, answers))
    try:
        assert feed.status == 200
        flowed, ended_at = await until_ended(feed, max_age + 20)
    finally:
        writer.cancel()
        await feed.close()
    # The signature's clock counts whole seconds: the cookie expires within a second of max_age.
    print(f"expired session: feed ended {ended_at - signed_in - max_age:.1f} s after max_age")
    assert max_age <= ended_at - signed_in <= max_age + 1 + 15
    assert len(flowed) >= 10
    assert feed.keep_alives == 0


async def open_feeds(url: str, secret: str, count: int) -> list[FeedConnection]:
    gate = asyncio.Semaphore(50)

    async def one() -> FeedConnection:
        async with gate:
            feed = await FeedConnection.open(url, {"Authorization": f"Bearer {secret}"})
        assert feed.status == 200, await feed.body()
        return feed

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def commit_latencies(
    url: str, secret: str, count: int, feeds: list[FeedConnection]
) -> list[float]:
    """Answer times of ``count`` invites made one after the other; every feed must see each."""
    seen: list[list[int]] = [[] for _ in feeds]

    async def read(feed: FeedConnection, into: list[int]) -> None:
        while (event := await feed.next_event()) is not None:
            if event.data.get("type") == "invite.created" and event.id is not None:
                into.append(event.id)

    readers = [asyncio.create_task(read(f, into)) for f, into in zip(feeds, seen, strict=True)]
    answers: list[float] = []
    try:
        await asyncio.wait_for(invite_every(url, secret, 0.05, answers, count), 60)
        deadline = time.monotonic() + 30
        while any(len(ids) < count for ids in seen):
            assert time.monotonic() < deadline, "an event never reached a feed"
            await asyncio.sleep(0.05)
    finally:
        for task in readers:
            task.cancel()
    for ids in seen:
        assert ids[:count] == list(range(ids[0], ids[0] + count))  # all of them, in order
    return answers


async def test_commit_latency_does_not_depend_on_the_number_of_open_feeds(
    start_server: Any, tmp_path: Path
) -> None:
    many = 300
    server: LiveServer = start_server(
        SHOWME_CONFIG=unthrottled_config(tmp_path),
        SHOWME_MAX_FEEDS_PER_CREDENTIAL=str(many),
        SHOWME_MAX_FEEDS_PER_ORGANISATION=str(many),
    )
    writer_key = seed(server)
    _id, reader_key = new_key(server, "consoles")
    without: list[float] = []
    with_feeds: list[float] = []
    # Interleaved, so a machine that slows down for a while slows both sides.
    for _round in range(2):
        without += await commit_latencies(server.url, writer_key, 25, [])
        feeds = await open_feeds(server.url, reader_key, many)
        try:
            with_feeds += await commit_latencies(server.url, writer_key, 25, feeds)
        finally:
            for feed in feeds:
                await feed.close()
    ratio = statistics.median(with_feeds) / statistics.median(without)
    print(
        f"commit p50: {statistics.median(without) * 1000:.1f} ms without feeds, "
        f"{statistics.median(with_feeds) * 1000:.1f} ms with {many}: ratio {ratio:.2f}"
    )
    assert ratio < 3.0
