"""The open event feeds of this instance: one reader per organisation fans its events out.

A commit only wakes (``LocalBus.publish``). The organisation's reader then reads the new events
from the store once, serialises each once into its Server-Sent Events frame, keeps the most recent
frames in a bounded window and wakes the organisation's feeds, which take their frames from the
window. A feed whose cursor is older than the window (a resume after a long absence, a client too
slow to keep up) reads its backlog from the store itself, a page at a time and only a few feeds at
once. So a commit costs the same with no feed or a thousand open, the store sees one read per
organisation per wake, and nothing a client does holds memory beyond the window.

Every ``POLL_SECONDS`` one read of the organisations' last event ids wakes the readers whose
organisation has events no bus announced (committed by a CLI command, or by another instance
without a shared bus): they arrive within seconds.

Feeds are capped per credential holder (an API key, a signed-in user) and per organisation, in
this instance. Every ``feed_recheck_seconds``, whatever the traffic, each distinct credential with
open feeds is checked once again by the check that admitted it; when it is refused, its feeds get
``event: ended`` and close. A feed that is idle for a heartbeat also has its credential checked
before it says it is alive.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from showme_core.errors import ShowMeError, TooBusy
from showme_core.events import Event, events_after, last_event_id, latest_event_ids

if TYPE_CHECKING:
    from showme_core.app import ShowMe

log = structlog.get_logger("showme.feeds")

# Recent events kept per organisation with open feeds, by count and by bytes (whichever is
# reached first): the memory one organisation's feeds can cost, however many they are.
WINDOW_EVENTS = 256
WINDOW_BYTES = 256 * 1024
# Events one store read returns, for the reader and for a feed reading its backlog.
READ_PAGE = 200
# Backlog reads (and credential checks) in flight at once in this instance: a reconnect storm
# queues here instead of taking the connection pool from commits.
BACKLOG_READS = 4
CREDENTIAL_CHECKS = 4
# How often this instance looks for events that no bus announced (committed by a CLI command or
# another instance), and for how many organisations at once (one read).
POLL_SECONDS = 2.0
POLL_PAGE = 500
# Feeds woken before the reader lets the event loop serve other work (a commit) again.
WAKE_BATCH = 50
# Frames written to a client at once.
CHUNK_EVENTS = 100
# Seconds after which a refused feed may be tried again (sent as Retry-After).
REFUSED_RETRY_AFTER = 10
# How long an EventSource waits before reconnecting after the stream closes.
RETRY_MS = 2000

KEEP_ALIVE = b": keep-alive\n\n"
ENDED = b"event: ended\ndata: {}\n\n"

Check = Callable[[], Awaitable[object]]
"""Checks a feed's credential again: returns when it still holds, raises ShowMeError when not."""


def frame(event: Event) -> bytes:
    """An event as one Server-Sent Events frame (its JSON is on one line: newlines are escaped)."""
    data = json.dumps(event.to_json(), separators=(",", ":"))
    return f"id: {event.id}\ndata: {data}\n\n".encode()


class Credential:
    """One distinct credential (an API key, a session cookie) with open feeds: checked again
    once for all of them."""

    def __init__(self, feeds: Feeds, key: str, check: Check, checked_at: float) -> None:
        self.key = key
        self.feeds: set[Feed] = set()
        self.refused = False
        # Loop time at which the latest check started (the admission's, or a later one).
        self.checked_at = checked_at
        self._hub = feeds
        self._check = check
        self._running: asyncio.Task[None] | None = None

    async def confirm(self, since: float) -> bool:
        """Whether the credential still holds, by a check that started at ``since`` or later."""
        while not self.refused and self.checked_at < since:
            await self.check()
        return not self.refused

    async def check(self) -> None:
        """Check now, or join the check already running (one check serves every feed)."""
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(
                self._run(), name="feed-credential-check"
            )
        # A feed that hangs up while waiting must not cancel the check its siblings wait for.
        await asyncio.shield(self._running)

    async def _run(self) -> None:
        async with self._hub.check_gate:
            started = asyncio.get_running_loop().time()
            try:
                await self._check()
            except ShowMeError as refusal:
                self._hub.metrics.feed_rechecks.labels("refused").inc()
                log.info("event feed credential refused", code=refusal.code, feeds=len(self.feeds))
                self.refused = True
                for feed in list(self.feeds):
                    feed.end(ENDED)
            except Exception:
                # The store is unreachable, say: the feeds stay, the next round checks again.
                self._hub.metrics.feed_rechecks.labels("error").inc()
                log.warning("event feed credential check failed", exc_info=True)
            else:
                self._hub.metrics.feed_rechecks.labels("ok").inc()
            finally:
                self.checked_at = max(self.checked_at, started)

    async def settle(self) -> None:
        """Wait for a check in flight (at shutdown, before the store goes away)."""
        if self._running is not None:
            await asyncio.wait([self._running])


class OrganisationReader:
    """Reads one organisation's new events once per wake and keeps the latest frames."""

    def __init__(self, feeds: Feeds, organisation_id: str) -> None:
        self.organisation_id = organisation_id
        self.feeds: set[Feed] = set()
        # Until the first read, feeds wait: nothing is known about the window yet.
        self.ready = False
        # The window holds every event with base < id <= last.
        self.base = 0
        self.last = 0
        self._ids: list[int] = []
        self._frames: list[bytes] = []
        self._bytes = 0
        self._hub = feeds
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"feed-reader-{self.organisation_id}"
        )

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def nudge(self) -> None:
        """Read now: the store has events that no bus announced (another process's)."""
        if self._wake is not None:
            self._wake.set()

    @property
    def window_size(self) -> int:
        return len(self._ids)

    def frames_after(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        """Frames of the events after ``cursor`` that the window holds, oldest first."""
        start = bisect.bisect_right(self._ids, cursor)
        end = start + limit
        return list(zip(self._ids[start:end], self._frames[start:end], strict=True))

    async def _run(self) -> None:
        showme = self._hub.showme
        # Listen before the first read, so a commit in between is not missed.
        with showme.bus.listen(self.organisation_id) as wake:
            self._wake = wake
            while not self.ready:
                try:
                    async with showme.db.read() as conn:
                        seq = await last_event_id(conn, self.organisation_id)
                except Exception:
                    log.warning("event feed reader cannot start", exc_info=True)
                    await asyncio.sleep(POLL_SECONDS)
                    continue
                self.base = self.last = seq
                self.ready = True
            await self._wake_feeds()
            while True:
                await wake.wait()
                wake.clear()
                try:
                    await self._catch_up()
                except Exception:
                    log.warning("event feed reader cannot read", exc_info=True)
                    await asyncio.sleep(POLL_SECONDS)

    async def _catch_up(self) -> None:
        showme = self._hub.showme
        while True:
            async with showme.db.read() as conn:
                batch = await events_after(conn, self.organisation_id, self.last, READ_PAGE)
            self._hub.metrics.feed_store_reads.labels("reader").inc()
            if not batch:
                return
            self._append(batch)
            await self._wake_feeds()
            if len(batch) < READ_PAGE:
                return

    def _append(self, batch: list[Event]) -> None:
        for event in batch:
            data = frame(event)
            self._ids.append(event.id)
            self._frames.append(data)
            self._bytes += len(data)
        self.last = batch[-1].id
        drop = max(0, len(self._ids) - WINDOW_EVENTS)
        kept_bytes = self._bytes - sum(len(f) for f in self._frames[:drop])
        # The newest frame stays even when it alone is over the byte bound.
        while kept_bytes > WINDOW_BYTES and drop < len(self._ids) - 1:
            kept_bytes -= len(self._frames[drop])
            drop += 1
        if drop:
            self.base = self._ids[drop - 1]
            del self._ids[:drop]
            del self._frames[:drop]
            self._bytes = kept_bytes

    async def _wake_feeds(self) -> None:
        for count, feed in enumerate(list(self.feeds), start=1):
            feed.wake()
            if count % WAKE_BATCH == 0:
                # Let the woken feeds write, and a request that arrived meanwhile run, before
                # waking more: a commit never waits behind a whole fan-out.
                await asyncio.sleep(0)


class Feed:
    """One open feed: a cursor into its organisation's events, and the credential it holds."""

    def __init__(
        self,
        feeds: Feeds,
        reader: OrganisationReader,
        credential: Credential,
        holder: str,
        after: int,
    ) -> None:
        self.organisation_id = reader.organisation_id
        self.holder = holder
        self.credential = credential
        self.cursor = after
        self._hub = feeds
        self._reader = reader
        self._wake = asyncio.Event()
        # None while open; then the last words before closing (b"" when closing quietly).
        self._ending: bytes | None = None
        self._closed = False

    def wake(self) -> None:
        self._wake.set()

    def end(self, last_words: bytes = b"") -> None:
        """Make the stream send ``last_words`` and close."""
        if self._ending is None:
            self._ending = last_words
        self._wake.set()

    async def stream(self) -> AsyncIterator[bytes]:
        """The response body: frames in id order, keep-alives when idle, until the feed ends."""
        loop = asyncio.get_running_loop()
        beat = loop.time()
        try:
            yield f"retry: {RETRY_MS}\n: feed from {self.cursor}\n\n".encode()
            while True:
                self._wake.clear()
                if self._ending is not None:
                    if self._ending:
                        yield self._ending
                    return
                chunk = await self._next_chunk()
                if chunk:
                    yield chunk
                    continue
                try:
                    async with asyncio.timeout(self._hub.heartbeat):
                        await self._wake.wait()
                except TimeoutError:
                    # A refusal ends this feed through Credential.check; the loop says so.
                    if await self.credential.confirm(beat):
                        beat = loop.time()
                        yield KEEP_ALIVE
        finally:
            self.close()

    async def _next_chunk(self) -> bytes:
        reader = self._reader
        if not reader.ready:
            return b""
        if self.cursor < reader.base:
            backlog = await self._hub.read_backlog(self.organisation_id, self.cursor)
            if backlog:
                self.cursor = backlog[-1].id
                return b"".join(frame(event) for event in backlog)
        frames = reader.frames_after(self.cursor, CHUNK_EVENTS)
        if not frames:
            return b""
        self.cursor = frames[-1][0]
        return b"".join(data for _id, data in frames)

    def close(self) -> None:
        """Give back this feed's place (idempotent; also when its stream never started)."""
        if self._closed:
            return
        self._closed = True
        self._hub.release(self)


class Feeds:
    """The open event feeds of this instance, their readers, caps and credential re-checks."""

    def __init__(self, showme: ShowMe) -> None:
        self.showme = showme
        settings = showme.settings
        self.heartbeat = settings.sse_heartbeat_seconds
        self.recheck_seconds = settings.feed_recheck_seconds
        self.max_per_credential = settings.max_feeds_per_credential
        self.max_per_organisation = settings.max_feeds_per_organisation
        self.metrics = showme.metrics
        self.backlog_gate = asyncio.Semaphore(BACKLOG_READS)
        self.check_gate = asyncio.Semaphore(CREDENTIAL_CHECKS)
        self._readers: dict[str, OrganisationReader] = {}
        self._credentials: dict[str, Credential] = {}
        self._per_holder: collections.Counter[str] = collections.Counter()
        self._rechecks: asyncio.Task[None] | None = None
        self._polls: asyncio.Task[None] | None = None

    def open(
        self,
        *,
        organisation_id: str,
        holder: str,
        credential_key: str,
        check: Check,
        checked_at: float,
        after: int,
    ) -> Feed:
        """Admit a feed after ``after`` or refuse it (``TooBusy``, ``too_many_feeds``).

        ``holder`` is what the per-credential cap counts (``api_key:<id>``, ``user:<id>``);
        ``credential_key`` tells apart the credentials one re-check serves (a key's secret, a
        session cookie), ``check`` re-checks it, and ``checked_at`` is when the admitting check
        started (the event loop's clock).
        """
        reader = self._readers.get(organisation_id)
        if reader is not None and len(reader.feeds) >= self.max_per_organisation:
            self.metrics.feeds_refused.labels("organisation").inc()
            raise _refusal(
                f"Your organisation already has {self.max_per_organisation} event feeds open "
                "here, the most allowed. Close a console tab or an integration's feed, then "
                "try again.",
                limit=self.max_per_organisation,
            )
        if self._per_holder[holder] >= self.max_per_credential:
            self.metrics.feeds_refused.labels("credential").inc()
            raise _refusal(
                f"This {'API key' if holder.startswith('api_key:') else 'user'} already has "
                f"{self.max_per_credential} event feeds open here, the most allowed. Close one "
                "(a console tab, a connection of the integration), then try again.",
                limit=self.max_per_credential,
            )
        if reader is None:
            reader = self._readers[organisation_id] = OrganisationReader(self, organisation_id)
            reader.start()
            self.metrics.feed_readers.inc()
        credential = self._credentials.get(credential_key)
        if credential is None or credential.refused:
            credential = Credential(self, credential_key, check, checked_at)
            self._credentials[credential_key] = credential
        else:
            credential.checked_at = max(credential.checked_at, checked_at)
        feed = Feed(self, reader, credential, holder, after)
        reader.feeds.add(feed)
        credential.feeds.add(feed)
        self._per_holder[holder] += 1
        self.metrics.feed_clients.inc()
        return feed

    def release(self, feed: Feed) -> None:
        """A feed closed: give back its places; stop what no open feed needs any more."""
        self.metrics.feed_clients.dec()
        self._per_holder[feed.holder] -= 1
        if self._per_holder[feed.holder] <= 0:
            del self._per_holder[feed.holder]
        credential = feed.credential
        credential.feeds.discard(feed)
        if not credential.feeds and self._credentials.get(credential.key) is credential:
            del self._credentials[credential.key]
        reader = self._readers.get(feed.organisation_id)
        if reader is not None:
            reader.feeds.discard(feed)
            if not reader.feeds:
                del self._readers[feed.organisation_id]
                reader.stop()
                self.metrics.feed_readers.dec()

    async def read_backlog(self, organisation_id: str, after: int) -> list[Event]:
        """Events after ``after`` from the store, one page, for a feed behind the window."""
        async with self.backlog_gate:
            async with self.showme.db.read() as conn:
                page = await events_after(conn, organisation_id, after, READ_PAGE)
            self.metrics.feed_store_reads.labels("backlog").inc()
            return page

    async def recheck(self) -> None:
        """Check every distinct credential with open feeds once; end the feeds of refused ones."""
        credentials = [c for c in self._credentials.values() if not c.refused]
        if credentials:
            await asyncio.gather(*(credential.check() for credential in credentials))

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._rechecks = loop.create_task(self._recheck_loop(), name="feed-rechecks")
        self._polls = loop.create_task(self._poll_loop(), name="feed-polls")

    async def stop(self) -> None:
        """Close every feed quietly (clients reconnect elsewhere) and stop the background work."""
        for task in (self._rechecks, self._polls):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for reader in list(self._readers.values()):
            reader.stop()
            for feed in list(reader.feeds):
                feed.end()
        for credential in list(self._credentials.values()):
            await credential.settle()

    def open_count(self, organisation_id: str | None = None) -> int:
        """Open feeds in this instance (of one organisation, when given)."""
        if organisation_id is None:
            return sum(len(reader.feeds) for reader in self._readers.values())
        reader = self._readers.get(organisation_id)
        return len(reader.feeds) if reader else 0

    def window_size(self, organisation_id: str) -> int:
        """Events this instance keeps in memory for the organisation's feeds."""
        reader = self._readers.get(organisation_id)
        return reader.window_size if reader else 0

    async def _recheck_loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.recheck_seconds
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += self.recheck_seconds
            try:
                await self.recheck()
            except Exception:
                log.warning("event feed credential round failed", exc_info=True)
            # A round longer than the period starts the next one at once, never a burst of them.
            due = max(due, loop.time())

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                await self.poll()
            except Exception:
                log.warning("event feed poll failed", exc_info=True)

    async def poll(self) -> None:
        """Wake the readers of organisations whose events moved without a bus telling this
        instance: one store read for all of them."""
        readers = [reader for reader in self._readers.values() if reader.ready]
        for start in range(0, len(readers), POLL_PAGE):
            page = readers[start : start + POLL_PAGE]
            async with self.showme.db.read() as conn:
                latest = await latest_event_ids(conn, [r.organisation_id for r in page])
            self.metrics.feed_store_reads.labels("poll").inc()
            for reader in page:
                if latest.get(reader.organisation_id, 0) > reader.last:
                    reader.nudge()


def _refusal(message: str, limit: int) -> TooBusy:
    refusal = TooBusy(message, code="too_many_feeds", limit=limit)
    refusal.retry_after = REFUSED_RETRY_AFTER
    return refusal
