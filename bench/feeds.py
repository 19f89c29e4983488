"""Event commit latency with 0, 100 and 1,000 open event feeds, and delivery to those feeds.

Against a real ``showme serve`` on loopback, the feeds (real SSE connections over TCP, all with
one API key as in the issue's report, held by one asyncio process of their own so that reading
them never delays the answers being timed here) are opened, then invites are created one after
the other (``POST /api/v1/invites`` with ``send_sms: false``: one event each, answered once
committed), with a pause between them. Per count of feeds it prints:

- commit: the time to answer each POST (the budget: with 1,000 feeds no slower than with none);
- the ratio of each round's median to the median with no feed in the same round;
- the server's own mean time to answer those POSTs (its request histogram, read from /metrics);
- another organisation's commit (it has no feed), made between two of the first one's;
- delivery: from the POST's answer to the event on the first feed and on the last one (every
  feed has it); the event is published at commit, just before the answer, so it can be negative.

Counts run interleaved, round after round, in a rotating order, so a machine that slows down for
a while slows every count. The feed caps are raised for the run (they are 8 per credential and
200 per organisation by default), and so are the invite rate limits.

Run: .venv/bin/python -m bench.feeds [--store sqlite|postgresql] [--rounds 3] [--commits 25]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import asyncpg
import httpx

from bench._support import Server, percentile, showme_server
from tests.sse import FeedConnection

PG_ADMIN_DSN = os.environ.get("SHOWME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Phase:
    """One round at one count of feeds."""

    feeds: int
    commits: list[float] = field(default_factory=list)
    other_tenant: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    # Mean time the server itself took to answer the invites (both organisations'), from its own
    # histogram: what the client's share of the two cores cannot inflate.
    server_mean: float = 0.0


async def open_feeds(url: str, secret: str, count: int) -> list[FeedConnection]:
    gate = asyncio.Semaphore(100)

    async def one() -> FeedConnection:
        async with gate:
            feed = await FeedConnection.open(url, {"Authorization": f"Bearer {secret}"})
        if feed.status != 200:
            raise RuntimeError(f"feed refused: {feed.status} {await feed.body()!r}")
        return feed

    return list(await asyncio.gather(*(one() for _ in range(count))))


def hold_feeds(url: str, secret: str, count: int, pipe: Connection) -> None:
    """In a process of its own, so that reading the feeds never delays the answers being timed:
    hold ``count`` feeds open, say ``ready``, then, given the invites made, answer when each one's
    event reached the first feed and the last."""
    asyncio.run(_hold_feeds(url, secret, count, pipe))


async def _hold_feeds(url: str, secret: str, count: int, pipe: Connection) -> None:
    feeds = await open_feeds(url, secret, count)
    arrivals: dict[str, list[float]] = {}

    async def read(feed: FeedConnection) -> None:
        while (event := await feed.next_event()) is not None:
            if event.data.get("type") == "invite.created":
                arrivals.setdefault(event.data["invite_id"], []).append(event.received_at)

    readers = [asyncio.create_task(read(feed)) for feed in feeds]
    try:
        pipe.send("ready")
        expected: list[str] = await asyncio.to_thread(pipe.recv)
        deadline = time.monotonic() + 60
        while any(len(arrivals.get(i, ())) < count for i in expected):
            if time.monotonic() > deadline:
                raise RuntimeError("some events never reached every feed")
            await asyncio.sleep(0.05)
        pipe.send({i: (min(arrivals[i]), max(arrivals[i])) for i in expected})
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*(feed.close() for feed in feeds))


async def create_invite(client: httpx.AsyncClient, secret: str) -> tuple[str, float, float]:
    """One invite (one event): its id, when it was sent and when it was answered."""
    sent = time.monotonic()
    answer = await client.post(
        "/api/v1/invites",
        json={"phone": "+32470123456", "send_sms": False},
        headers={"Authorization": f"Bearer {secret}"},
    )
    done = time.monotonic()
    answer.raise_for_status()
    return answer.json()["id"], sent, done


async def invite_timing(client: httpx.AsyncClient) -> tuple[float, float]:
    """The server's own sum and count of seconds spent answering ``POST /api/v1/invites``."""
    text = (await client.get("/metrics")).text
    found = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for kind in found:
            prefix = f'showme_http_request_duration_seconds_{kind}{{route="/api/v1/invites"}} '
            if line.startswith(prefix):
                found[kind] = float(line[len(prefix) :])
    return found["sum"], found["count"]


async def run_phase(
    server: Server, feed_key: str, other_key: str, count: int, commits: int, pause: float
) -> Phase:
    phase = Phase(count)
    holder = None
    if count:
        context = multiprocessing.get_context("spawn")
        pipe, child_end = context.Pipe()
        holder = context.Process(target=hold_feeds, args=(server.url, feed_key, count, child_end))
        holder.start()
        if not await asyncio.to_thread(pipe.poll, 120) or pipe.recv() != "ready":
            raise RuntimeError(f"{count} feeds did not open")
    answered: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            spent, answered_before = await invite_timing(client)
            for _ in range(commits):
                invite_id, sent, done = await create_invite(client, server.api_key)
                phase.commits.append(done - sent)
                answered[invite_id] = done
                await asyncio.sleep(pause / 2)
                # Another organisation, without feeds, commits meanwhile.
                _id, sent, done = await create_invite(client, other_key)
                phase.other_tenant.append(done - sent)
                await asyncio.sleep(pause / 2)
            spent_after, answered_after = await invite_timing(client)
            phase.server_mean = (spent_after - spent) / (answered_after - answered_before)
        if holder is not None:
            pipe.send(list(answered))
            if not await asyncio.to_thread(pipe.poll, 90):
                raise RuntimeError("the feeds did not report their events")
            arrivals: dict[str, tuple[float, float]] = pipe.recv()
            for invite_id, at in answered.items():
                first, last = arrivals[invite_id]
                phase.first.append(first - at)
                phase.last.append(last - at)
    finally:
        if holder is not None:
            holder.join(30)
            if holder.is_alive():
                holder.kill()
                holder.join()
    return phase


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def report(store: str, counts: list[int], rounds: list[dict[int, Phase]]) -> None:
    print(f"\nstore: {store}, {len(rounds)} rounds of {len(rounds[0][counts[0]].commits)} commits")
    print(
        "| open feeds | commit p50 | p50 per round (min to max) | commit p95 | ratio to 0 feeds "
        "(median of rounds, min to max) | server's own mean | other tenant's commit p50 / p95 | "
        "delivery p50 first / every feed | delivery p95 every feed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for count in counts:
        commits = [value for r in rounds for value in r[count].commits]
        per_round = [statistics.median(r[count].commits) for r in rounds]
        ratios = [
            statistics.median(r[count].commits) / statistics.median(r[0].commits) for r in rounds
        ]
        other = [value for r in rounds for value in r[count].other_tenant]
        first = [value for r in rounds for value in r[count].first]
        last = [value for r in rounds for value in r[count].last]
        cells = [
            str(count),
            ms(statistics.median(commits)),
            f"{ms(min(per_round))} to {ms(max(per_round))}",
            ms(percentile(commits, 95)),
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f})",
            ms(statistics.fmean(r[count].server_mean for r in rounds)),
            f"{ms(statistics.median(other))} / {ms(percentile(other, 95))}",
            f"{ms(statistics.median(first))} / {ms(statistics.median(last))}" if last else "n/a",
            ms(percentile(last, 95)) if last else "n/a",
        ]
        print("| " + " | ".join(cells) + " |")


async def bench(
    server: Server,
    keys: tuple[str, str],
    counts: list[int],
    rounds: int,
    commits: int,
    pause: float,
) -> list[dict[int, Phase]]:
    results: list[dict[int, Phase]] = []
    for number in range(rounds):
        # Rotate the order, so no count always runs first (or right after the biggest).
        order = counts[number % len(counts) :] + counts[: number % len(counts)]
        phases = {}
        for count in order:
            phases[count] = await run_phase(server, *keys, count, commits, pause)
            print(
                f"round {number + 1}, {count} feeds: commit p50 "
                f"{ms(statistics.median(phases[count].commits))}",
                flush=True,
            )
        results.append(phases)
    return results


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for one run; dropped afterwards."""
    name = f"showme_bench_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def store_settings(store: str) -> Iterator[dict[str, str]]:
    """Environment for the server: the store, raised feed caps, no invite rate limits."""
    with tempfile.TemporaryDirectory(prefix="showme-bench-feeds-") as tmp:
        config = Path(tmp) / "showme.toml"
        config.write_text(
            "invite_rate_per_sender = [[1000000, 60.0]]\n"
            "invite_rate_per_organisation = [[1000000, 60.0]]\n"
            "max_feeds_per_credential = 5000\n"
            "max_feeds_per_organisation = 5000\n"
        )
        env = {"SHOWME_CONFIG": str(config)}
        if store == "postgresql":
            with scratch_postgres() as url:
                yield {**env, "SHOWME_DATABASE_URL": url}
        else:
            yield env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--feeds", default="0,100,1000", help="counts of open feeds (with 0)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commits", type=int, default=25, help="invites per round and count")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between invites")
    args = parser.parse_args()
    counts = sorted({0, *(int(c) for c in args.feeds.split(","))})
    with store_settings(args.store) as env, showme_server(**env) as server:
        feed_key = server.cli("apikey", "create", "--org", "bench", "--name", "feeds")
        server.cli("org", "create", "--slug", "other", "--name", "Other PSAP", "--region", "BE")
        other_key = server.cli("apikey", "create", "--org", "other", "--name", "other")
        keys = (feed_key.strip().split()[-1], other_key.strip().split()[-1])
        rounds = asyncio.run(bench(server, keys, counts, args.rounds, args.commits, args.pause))
    report(args.store, counts, rounds)


if __name__ == "__main__":
    main()
