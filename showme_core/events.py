"""Events: rows with a per-organisation monotonic id, and the bus that wakes their readers.

The id comes from ``organisations.event_seq``, bumped in the event's own transaction. The bump takes
the organisation row's write lock (PostgreSQL) or the database write lock (SQLite), so transaction
n+1 cannot commit before transaction n: no reader ever sees id n+1 while n is still invisible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core.clock import as_utc, iso, utcnow
from showme_core.store.schema import events, organisations


@dataclass(frozen=True)
class Event:
    organisation_id: str
    id: int
    type: str
    invite_id: str | None
    data: dict[str, Any]
    created_at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "invite_id": self.invite_id,
            "data": self.data,
            "created_at": iso(self.created_at),
        }


async def append_event(
    conn: AsyncConnection,
    organisation_id: str,
    type_: str,
    data: dict[str, Any],
    invite_id: str | None = None,
) -> Event:
    """Add an event inside the caller's transaction; publish it only after that commits."""
    seq = (
        await conn.execute(
            update(organisations)
            .where(organisations.c.id == organisation_id)
            .values(event_seq=organisations.c.event_seq + 1)
            .returning(organisations.c.event_seq)
        )
    ).scalar_one()
    event = Event(organisation_id, int(seq), type_, invite_id, data)
    await conn.execute(
        events.insert().values(
            organisation_id=organisation_id,
            seq=event.id,
            type=type_,
            invite_id=invite_id,
            data=data,
            created_at=event.created_at,
        )
    )
    return event


async def events_after(
    conn: AsyncConnection, organisation_id: str, after: int, limit: int = 500
) -> list[Event]:
    """At most ``limit`` events of the organisation with an id above ``after``, in id order."""
    rows = await conn.execute(
        select(events)
        .where(events.c.organisation_id == organisation_id, events.c.seq > after)
        .order_by(events.c.seq)
        .limit(limit)
    )
    return [
        Event(r.organisation_id, int(r.seq), r.type, r.invite_id, r.data, as_utc(r.created_at))
        for r in rows
    ]


async def last_event_id(conn: AsyncConnection, organisation_id: str) -> int:
    seq = await conn.scalar(
        select(organisations.c.event_seq).where(organisations.c.id == organisation_id)
    )
    return int(seq or 0)


async def latest_event_ids(
    conn: AsyncConnection, organisation_ids: Collection[str]
) -> dict[str, int]:
    """The last event id handed out in each of these organisations, in one read."""
    rows = await conn.execute(
        select(organisations.c.id, organisations.c.event_seq).where(
            organisations.c.id.in_(list(organisation_ids))
        )
    )
    return {row.id: int(row.event_seq or 0) for row in rows}


class LocalBus:
    """Wakes the feed reader of one organisation in this process after a commit. It carries no
    event: the reader reads them from the store, which stays the truth (``feeds.py``)."""

    name = "local"

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Event]] = {}

    def publish(self, organisation_id: str) -> None:
        for wake in self._listeners.get(organisation_id, ()):
            wake.set()

    @contextmanager
    def listen(self, organisation_id: str) -> Iterator[asyncio.Event]:
        wake = asyncio.Event()
        self._listeners.setdefault(organisation_id, set()).add(wake)
        try:
            yield wake
        finally:
            listeners = self._listeners.get(organisation_id)
            if listeners is not None:
                listeners.discard(wake)
                if not listeners:
                    del self._listeners[organisation_id]

    def listener_count(self) -> int:
        return sum(len(v) for v in self._listeners.values())
