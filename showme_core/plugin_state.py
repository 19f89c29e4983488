"""What a plugin keeps in the store: records of its own kinds, per organisation or global.

A plugin cannot add tables to ShowMe's migrations, so it keeps JSON records here instead, through
``showme.plugin_state(name)`` (``docs/plugins.md``, "The service object"). A record is found by
``(kind, id)``; lists are newest first, per organisation. Values must be JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core.clock import as_utc, utcnow
from showme_core.ids import new_id
from showme_core.store.schema import plugin_records

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from showme_core.store import Database

MAX_LIST = 500


@dataclass(frozen=True)
class Record:
    """One record of a plugin."""

    kind: str
    id: str
    organisation_id: str | None
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _record(row: Any) -> Record:
    return Record(
        kind=row.kind,
        id=row.id,
        organisation_id=row.organisation_id,
        data=dict(row.data),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


@asynccontextmanager
async def _savepoint(conn: AsyncConnection, wanted: bool) -> AsyncIterator[None]:
    """In the plugin's own transaction, a refused insert must not spoil the rest of it."""
    if wanted:
        async with conn.begin_nested():
            yield
    else:
        yield


class RecordExists(Exception):
    """``add`` with an id that is taken."""


class PluginState:
    """The records of one plugin. Every method is one short transaction, unless ``in_``
    (:meth:`transaction`) passes a connection to run several in one."""

    def __init__(self, db: Database, plugin: str) -> None:
        self._db = db
        self.plugin = plugin

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction for several calls at once (pass it as ``conn=``)."""
        async with self._db.transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _conn(self, conn: AsyncConnection | None, write: bool) -> AsyncIterator[Any]:
        if conn is not None:
            yield conn
        elif write:
            async with self._db.transaction() as fresh:
                yield fresh
        else:
            async with self._db.read() as fresh:
                yield fresh

    async def add(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        organisation_id: str | None = None,
        id: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> Record:
        """Store a new record (a fresh id unless given); :class:`RecordExists` if it is taken."""
        now = utcnow()
        record_id = id or new_id()
        try:
            async with self._conn(conn, write=True) as db, _savepoint(db, conn is not None):
                await db.execute(
                    plugin_records.insert().values(
                        plugin=self.plugin,
                        kind=kind,
                        id=record_id,
                        organisation_id=organisation_id,
                        data=data,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError as exc:
            raise RecordExists(f"{self.plugin} already has a {kind} {record_id!r}") from exc
        return Record(kind, record_id, organisation_id, dict(data), now, now)

    async def get(
        self,
        kind: str,
        id: str,
        *,
        organisation_id: str | None = None,
        for_update: bool = False,
        conn: AsyncConnection | None = None,
    ) -> Record | None:
        """The record, or None. With ``organisation_id`` (an id from a request, say), only that
        organisation's: another organisation's record is as good as absent. With ``for_update``
        (inside :meth:`transaction`), the record is locked until the transaction ends, so a
        read-change-write cannot lose another's write made meanwhile."""
        if for_update and conn is None:
            raise ValueError("for_update needs the transaction's conn")
        query = self._where(kind, id, organisation_id)
        if for_update:
            # PostgreSQL locks the row; SQLite's write transaction already holds the database.
            query = query.with_for_update()
        async with self._conn(conn, write=False) as db:
            row = (await db.execute(query)).first()
        return _record(row) if row else None

    async def update(
        self,
        kind: str,
        id: str,
        data: dict[str, Any],
        *,
        organisation_id: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> bool:
        """Replace a record's data (only ``organisation_id``'s, when given); False when there is
        no such record."""
        async with self._conn(conn, write=True) as db:
            result = await db.execute(
                update(plugin_records)
                .where(*self._keys(kind, id, organisation_id))
                .values(data=data, updated_at=utcnow())
            )
        return bool(result.rowcount)

    async def delete(
        self,
        kind: str,
        id: str,
        *,
        organisation_id: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> bool:
        """Delete a record (only ``organisation_id``'s, when given); False when there was none."""
        async with self._conn(conn, write=True) as db:
            result = await db.execute(
                delete(plugin_records).where(*self._keys(kind, id, organisation_id))
            )
        return bool(result.rowcount)

    async def list(
        self,
        kind: str,
        *,
        organisation_id: str | None = None,
        limit: int = 100,
        before: datetime | None = None,
        conn: AsyncConnection | None = None,
    ) -> list[Record]:
        """Records of ``kind`` (of one organisation, when given), newest first."""
        query = select(plugin_records).where(
            plugin_records.c.plugin == self.plugin, plugin_records.c.kind == kind
        )
        if organisation_id is not None:
            query = query.where(plugin_records.c.organisation_id == organisation_id)
        if before is not None:
            query = query.where(plugin_records.c.created_at < as_utc(before))
        query = query.order_by(
            plugin_records.c.created_at.desc(), plugin_records.c.id.desc()
        ).limit(min(limit, MAX_LIST))
        async with self._conn(conn, write=False) as db:
            return [_record(row) for row in await db.execute(query)]

    def _keys(self, kind: str, id: str, organisation_id: str | None = None) -> Iterator[Any]:
        yield plugin_records.c.plugin == self.plugin
        yield plugin_records.c.kind == kind
        yield plugin_records.c.id == id
        if organisation_id is not None:
            yield plugin_records.c.organisation_id == organisation_id

    def _where(self, kind: str, id: str, organisation_id: str | None = None) -> Any:
        return select(plugin_records).where(*self._keys(kind, id, organisation_id))
