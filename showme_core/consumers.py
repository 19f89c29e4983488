"""Durable event consumers: each organisation's events, in commit order, at least once.

A consumer (a plugin's ``EventConsumer`` or a CAD adapter) has a cursor per organisation in the
store (``event_cursors``): the id of the last event it acknowledged by returning from
``deliver``. A lane per (consumer, organisation) reads the events after its cursor from the store,
hands them over one at a time, and moves the cursor only once ``deliver`` returned; an exception
or a timeout retries the same event with growing waits, so an event is never skipped and never
overtaken. Because lanes read the store, events committed by a CLI command or another instance
reach them too: the bus wakes a lane at once, and a poll every ``POLL_SECONDS`` finds the rest.

While it has events to deliver, a lane holds a lease on its cursor row, so that of several
instances only one delivers to a consumer for an organisation at a time; another takes over once
a lease lapses (an instance that died), and a lane that finds it lost its lease stops at once. An
idle lane holds nothing and costs one read per poll. Delivery is at least once: an event delivered
just before a crash, whose cursor was not yet moved, is delivered again after it. Leases compare
the instances' clocks, which must agree to within a few seconds (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from showme_core.clock import as_utc, utcnow
from showme_core.events import Event, events_after
from showme_core.store.schema import event_cursors, organisations

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.providers import EventConsumer

log = structlog.get_logger("showme.consumers")

POLL_SECONDS = 2.0
# A lane holds a lease only while it has events to deliver, renewed as it moves its cursor; an
# instance that died holds it at most LEASE_SECONDS, after which another (or the restarted one)
# goes on. A delivery starts only with more than RENEW_BEFORE_SECONDS of lease left, so the
# lease cannot lapse while a delivery (bounded by DELIVER_TIMEOUT_SECONDS) is under way.
DELIVER_TIMEOUT_SECONDS = 10.0
LEASE_SECONDS = 15.0
RENEW_BEFORE_SECONDS = DELIVER_TIMEOUT_SECONDS + 2.0
BATCH = 100
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


async def _woken(wake: asyncio.Event, seconds: float) -> None:
    """Wait for ``wake`` at most ``seconds``. Not ``wait_for``: on Python 3.11 it can swallow a
    cancellation that arrives as the event is set, and a lane would then outlive ``stop()``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()


class _LeaseLost(Exception):
    """Another instance took over a lane's cursor."""


class Consumers:
    """The durable consumers of one instance and their lanes."""

    def __init__(self, showme: ShowMe, consumers: dict[str, EventConsumer]) -> None:
        self._showme = showme
        self.consumers = consumers
        self.instance = secrets.token_hex(8)
        self._lanes: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._started_at = utcnow()

    def start(self) -> None:
        self._started_at = utcnow()
        if self.consumers and self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(
                self._supervise(), name="event-consumers"
            )

    async def stop(self) -> None:
        tasks = [t for t in (self._supervisor, *self._lanes.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._supervisor = None
        self._lanes.clear()
        if self.consumers:
            with contextlib.suppress(Exception):  # the store may be going away too
                async with self._showme.db.transaction() as conn:
                    await conn.execute(
                        update(event_cursors)
                        .where(event_cursors.c.lease_owner == self.instance)
                        .values(lease_owner=None, lease_until=None)
                    )

    async def _supervise(self) -> None:
        """Start a lane for every (consumer, organisation) with events, now and as they come."""
        while True:
            try:
                async with self._showme.db.read() as db:
                    orgs = [row.id for row in await db.execute(select(organisations.c.id))]
                for name in self.consumers:
                    for org_id in orgs:
                        lane = self._lanes.get((name, org_id))
                        if lane is None or lane.done():
                            self._lanes[(name, org_id)] = asyncio.get_running_loop().create_task(
                                self._lane(name, org_id), name=f"consumer:{name}:{org_id}"
                            )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event consumers: cannot list organisations; trying again")
            await asyncio.sleep(POLL_SECONDS)

    async def _lane(self, name: str, organisation_id: str) -> None:
        consumer = self.consumers[name]
        metrics = self._showme.metrics
        loop = asyncio.get_running_loop()
        # When this instance's lease ends, by its own clock (a conservative estimate: the store's
        # deadline was set a little later). None while it holds no lease.
        held_until: float | None = None
        cursor = 0
        with self._showme.bus.listen(organisation_id) as wake:
            while True:
                wake.clear()
                # An idle lane costs a read, not a write: the lease is taken only for work.
                if not await self._pending(name, organisation_id):
                    await _woken(wake, POLL_SECONDS)
                    continue
                if held_until is None or held_until - loop.time() < RENEW_BEFORE_SECONDS:
                    started = loop.time()
                    acquired = await self._acquire(name, organisation_id, consumer)
                    if acquired is None:
                        # Another instance delivers to it: look again when its lease may lapse.
                        held_until = None
                        await asyncio.sleep(LEASE_SECONDS / 2)
                        continue
                    cursor, held_until = acquired, started + LEASE_SECONDS
                async with self._showme.db.read() as db:
                    batch = await events_after(db, organisation_id, cursor, limit=BATCH)
                try:
                    for event in batch:
                        if held_until - loop.time() < RENEW_BEFORE_SECONDS:
                            started = loop.time()
                            if not await self._renew(name, organisation_id):
                                raise _LeaseLost
                            held_until = started + LEASE_SECONDS
                        await self._deliver(name, consumer, event)
                        started = loop.time()
                        await self._advance(name, organisation_id, event.id)
                        cursor, held_until = event.id, started + LEASE_SECONDS
                        metrics.consumer_delivered.labels(name).inc()
                except _LeaseLost:
                    held_until = None  # another instance took over: ask the store again
                    continue
                if len(batch) == BATCH:
                    continue
                await _woken(wake, POLL_SECONDS)

    async def _pending(self, name: str, organisation_id: str) -> bool:
        """Whether the organisation has events past the consumer's cursor (or no cursor yet)."""
        async with self._showme.db.read() as db:
            newest = await db.scalar(
                select(organisations.c.event_seq).where(organisations.c.id == organisation_id)
            )
            cursor = await db.scalar(
                select(event_cursors.c.last_event_id).where(
                    event_cursors.c.consumer == name,
                    event_cursors.c.organisation_id == organisation_id,
                )
            )
        return cursor is None or int(newest or 0) > int(cursor)

    async def _deliver(self, name: str, consumer: EventConsumer, event: Event) -> None:
        """Hand one event over until the consumer takes it: never skipped, never overtaken."""
        wait = RETRY_FIRST_SECONDS
        while True:
            try:
                async with asyncio.timeout(DELIVER_TIMEOUT_SECONDS):
                    await consumer.deliver(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._showme.metrics.consumer_failures.labels(name).inc()
                log.warning(
                    "event consumer failed; the same event will be delivered again",
                    consumer=name,
                    event_id=event.id,
                    type=event.type,
                    organisation_id=event.organisation_id,
                    error=repr(exc)[:300],
                    retry_in=wait,
                )
            await asyncio.sleep(wait)
            wait = min(RETRY_MAX_SECONDS, wait * 2)
            # Still ours? Otherwise another instance delivers, and this one must not come back
            # with an old event after it has delivered newer ones.
            if not await self._renew(name, event.organisation_id):
                raise _LeaseLost

    async def _acquire(self, name: str, organisation_id: str, consumer: Any) -> int | None:
        """This instance's lease on the cursor (taking or renewing it): the cursor, or None
        while another instance holds it. A consumer seen for the first time for an
        organisation starts at its first event; with ``start = "latest"``, at the newest event
        the organisation has when its lane starts, unless the organisation was made after this
        instance started (then at its first event: none of it is old)."""
        now = utcnow()
        until = now + timedelta(seconds=LEASE_SECONDS)
        keys = (
            event_cursors.c.consumer == name,
            event_cursors.c.organisation_id == organisation_id,
        )
        async with self._showme.db.transaction() as conn:
            taken = await conn.execute(
                update(event_cursors)
                .where(
                    *keys,
                    (event_cursors.c.lease_owner.is_(None))
                    | (event_cursors.c.lease_owner == self.instance)
                    | (event_cursors.c.lease_until < now),
                )
                .values(lease_owner=self.instance, lease_until=until)
                .returning(event_cursors.c.last_event_id)
            )
            cursor = taken.scalar_one_or_none()
            if cursor is not None:
                return int(cursor)
            exists = await conn.scalar(select(event_cursors.c.last_event_id).where(*keys))
            if exists is not None:
                return None
            start = 0
            if getattr(consumer, "start", "earliest") == "latest":
                org = (
                    await conn.execute(
                        select(organisations.c.event_seq, organisations.c.created_at).where(
                            organisations.c.id == organisation_id
                        )
                    )
                ).first()
                # An organisation made since this instance started is new: all of it is news
                # (its lane starts up to a poll later, after its first events).
                if org is not None and as_utc(org.created_at) < self._started_at:
                    start = int(org.event_seq)
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        event_cursors.insert().values(
                            consumer=name,
                            organisation_id=organisation_id,
                            last_event_id=start,
                            updated_at=now,
                            lease_owner=self.instance,
                            lease_until=until,
                        )
                    )
            except IntegrityError:
                return None  # another instance made it first; it holds the lease
        return start

    async def _renew(self, name: str, organisation_id: str) -> bool:
        async with self._showme.db.transaction() as conn:
            renewed = await conn.execute(
                update(event_cursors)
                .where(
                    event_cursors.c.consumer == name,
                    event_cursors.c.organisation_id == organisation_id,
                    event_cursors.c.lease_owner == self.instance,
                )
                .values(lease_until=utcnow() + timedelta(seconds=LEASE_SECONDS))
            )
        return bool(renewed.rowcount)

    async def _advance(self, name: str, organisation_id: str, event_id: int) -> None:
        """Move the cursor past ``event_id`` and renew the lease, only while this instance still
        holds it: otherwise another delivers now, and this one stops at once."""
        async with self._showme.db.transaction() as conn:
            moved = await conn.execute(
                update(event_cursors)
                .where(
                    event_cursors.c.consumer == name,
                    event_cursors.c.organisation_id == organisation_id,
                    event_cursors.c.lease_owner == self.instance,
                    event_cursors.c.last_event_id < event_id,
                )
                .values(
                    last_event_id=event_id,
                    updated_at=utcnow(),
                    lease_until=utcnow() + timedelta(seconds=LEASE_SECONDS),
                )
            )
        if not moved.rowcount:
            raise _LeaseLost

    async def cursors(self, organisation_id: str) -> dict[str, int]:
        """Where each consumer is for ``organisation_id`` (for admins and tests)."""
        async with self._showme.db.read() as db:
            rows = await db.execute(
                select(event_cursors.c.consumer, event_cursors.c.last_event_id).where(
                    event_cursors.c.organisation_id == organisation_id
                )
            )
            return {row.consumer: int(row.last_event_id) for row in rows}
