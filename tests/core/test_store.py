"""The store: migrations create exactly the schema, and event ids never show a gap to a reader."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from showme_core.app import ShowMe
from showme_core.events import events_after
from showme_core.organisations import create_organisation
from showme_core.store.schema import metadata
from showme_core.testing import unique


async def test_migrations_match_the_schema(showme: ShowMe) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with showme.db.read() as db:
        assert await db.run_sync(diff) == []


async def test_event_ids_are_contiguous_under_concurrent_writers(showme: ShowMe) -> None:
    async with showme.transaction() as tx:
        org = await create_organisation(
            tx.conn, slug=unique("seq"), name="seq", default_region="BE"
        )
    seen: list[list[int]] = []

    async def writer(n: int) -> None:
        for i in range(10):
            async with showme.transaction() as tx:
                await tx.event(org.id, "credits.changed", {"credits": n * 100 + i})

    async def reader() -> None:
        last = 0
        while last < 80:
            async with showme.db.read() as db:
                batch = [e.id for e in await events_after(db, org.id, last)]
            if batch:
                # A reader never sees id n+1 before n: each batch continues where the last ended.
                assert batch == list(range(last + 1, last + 1 + len(batch))), (last, batch)
                seen.append(batch)
                last = batch[-1]
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(reader(), *(writer(n) for n in range(8))), timeout=60)
    assert [i for batch in seen for i in batch] == list(range(1, 81))


async def test_a_failed_transaction_leaves_no_event(showme: ShowMe) -> None:
    async with showme.transaction() as tx:
        org = await create_organisation(
            tx.conn, slug=unique("rollback"), name="rb", default_region="BE"
        )
    try:
        async with showme.transaction() as tx:
            await tx.event(org.id, "credits.changed", {"credits": 0})
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    async with showme.transaction() as tx:
        event = await tx.event(org.id, "credits.changed", {"credits": 0})
    assert event.id == 1
    async with showme.db.read() as db:
        assert [e.id for e in await events_after(db, org.id, 0)] == [1]
