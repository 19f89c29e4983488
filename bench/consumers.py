"""Durable event consumers: how fast a consumer catches up, and what idle lanes cost.

In process, on a fresh store (SQLite in a temporary directory, or a scratch PostgreSQL database):

- catch-up: ``--events`` events are committed for one organisation while no consumer runs; then
  a consumer that takes each event at once starts, and the time until its cursor reaches the last
  event is measured (events per second). Each event costs a cursor write: the figure is the
  store's synced-commit rate, which is what a CAD's backlog after an outage drains at;
- idle: with ``--orgs`` organisations and every lane caught up, the write transactions the lanes
  make in ``--idle-seconds`` (the goal is none: an idle lane reads).

Rounds alternate the two measurements so that a machine that slows down slows both.

Run: .venv/bin/python -m bench.consumers [--store sqlite|postgresql] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.feeds import scratch_postgres
from showme_core.app import create_app
from showme_core.config import Settings
from showme_core.hookspecs import hookimpl
from showme_core.organisations import create_organisation
from showme_core.store.migrate import migrate


class Taker:
    """A consumer that takes every event at once: what is measured is the core's part."""

    name = "bench-taker"

    async def deliver(self, event: Any) -> None:
        return None


class Registers:
    @hookimpl
    def showme_register_event_consumers(self, register: Any) -> None:
        register(Taker())


@contextmanager
def store(kind: str) -> Iterator[str]:
    if kind == "postgresql":
        with scratch_postgres() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="showme-bench-consumers-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'showme.db'}"


@contextlib.asynccontextmanager
async def service(url: str, data_dir: Path, consumers: bool) -> AsyncIterator[Any]:
    settings = Settings.model_validate(
        {
            "data_dir": data_dir,
            "database_url": url,
            "secret_keys": ["bench-only-key"],
            "log_file": data_dir / "showme.log",
            "retention_sweep_seconds": 0,
        }
    )
    app = create_app(settings, plugins=[Registers()] if consumers else [])
    showme = app.state.showme
    await showme.start()
    try:
        yield showme
    finally:
        await showme.stop()


async def new_org(showme: Any) -> str:
    async with showme.transaction() as tx:
        org = await create_organisation(
            tx.conn, slug=f"o-{secrets.token_hex(4)}", name="Bench", default_region="BE"
        )
    return str(org.id)


async def catch_up(url: str, data_dir: Path, events: int) -> float:
    async with service(url, data_dir, consumers=False) as showme:
        org_id = await new_org(showme)
        for n in range(events):
            async with showme.transaction() as tx:
                await tx.event(org_id, "credits.changed", {"credits": n})
    async with service(url, data_dir, consumers=True) as showme:
        started = time.perf_counter()
        deadline = started + 600
        while (await showme.consumers.cursors(org_id)).get(Taker.name, 0) < events:
            if time.perf_counter() > deadline:
                raise RuntimeError("the consumer did not catch up in 10 minutes")
            await asyncio.sleep(0.01)
        return events / (time.perf_counter() - started)


async def idle_writes(url: str, data_dir: Path, orgs: int, seconds: float) -> float:
    async with service(url, data_dir, consumers=True) as showme:
        have = len(await showme_orgs(showme))
        for _ in range(max(0, orgs - have)):
            await new_org(showme)
        # Every lane started (the supervisor looks every 2 s) and caught up.
        deadline = time.perf_counter() + 60
        while True:
            ids = await showme_orgs(showme)
            cursors = [await showme.consumers.cursors(i) for i in ids]
            if all(Taker.name in c for c in cursors):
                break
            if time.perf_counter() > deadline:
                raise RuntimeError("lanes did not start")
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)
        writes = 0
        transaction = showme.db.transaction

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal writes
            writes += 1
            return transaction(*args, **kwargs)

        showme.db.transaction = counted
        await asyncio.sleep(seconds)
        showme.db.transaction = transaction
        return writes / seconds


async def showme_orgs(showme: Any) -> list[str]:
    from sqlalchemy import select

    from showme_core.store.schema import organisations

    async with showme.db.read() as db:
        return [row.id for row in await db.execute(select(organisations.c.id))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    rates: list[float] = []
    idle: list[float] = []
    for round_ in range(args.rounds):
        with store(args.store) as url, tempfile.TemporaryDirectory() as tmp:
            migrate(url)
            rates.append(asyncio.run(catch_up(url, Path(tmp), args.events)))
            idle.append(asyncio.run(idle_writes(url, Path(tmp), args.orgs, args.idle_seconds)))
        print(
            f"round {round_ + 1}: catch-up {rates[-1]:.0f} events/s; "
            f"idle, {args.orgs} organisations: {idle[-1]:.2f} writes/s"
        )
    print(
        f"{args.store}: catch-up median {statistics.median(rates):.0f} events/s "
        f"({min(rates):.0f}-{max(rates):.0f}); idle writes median "
        f"{statistics.median(idle):.2f}/s ({min(idle):.2f}-{max(idle):.2f})"
    )


if __name__ == "__main__":
    main()
