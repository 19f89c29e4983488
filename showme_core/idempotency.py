"""Requests a client may retry safely (``Idempotency-Key``): the first answer, replayed.

A CAD that does not hear back from ``POST /api/v1/invites`` sends it again with the same key: it
gets the first answer (``201``, the same invite, its link), and nothing is created, charged or
sent a second time, even when the two copies race. The record is written in the same transaction
as what the request created, under a unique key, so of two racing copies one commits and the other
rolls back and replays it.

Of two copies racing on one instance, the second waits for the first and replays it. A copy on
another instance that fails where the first succeeded (the credit the first spent, the rate
limit it used up) looks for the first answer before answering with its error.

The answer's link is a credential: the record keeps it sealed with a key derived from the
``Idempotency-Key`` itself (never stored: only its hash is) and the service's keys, so the
database alone opens nothing, as with every other link token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core.clock import utcnow
from showme_core.errors import Conflict, InvalidInput, ShowMeError
from showme_core.sealing import seal, unseal
from showme_core.store.schema import idempotency_records

if TYPE_CHECKING:
    from showme_core.store import Database

KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
KEEP = timedelta(hours=24)
PURPOSE = "idempotent-link"


@dataclass(frozen=True)
class Idempotency:
    """A retryable request: who asks, for what, with which key and which content."""

    organisation_id: str
    actor: str
    operation: str
    key: str
    request_sha256: str

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()

    def _where(self) -> tuple[Any, ...]:
        return (
            idempotency_records.c.organisation_id == self.organisation_id,
            idempotency_records.c.actor == self.actor,
            idempotency_records.c.operation == self.operation,
            idempotency_records.c.key_hash == self.key_hash,
        )


def idempotency_for(
    organisation_id: str, actor: str, operation: str, key: str | None, request: dict[str, Any]
) -> Idempotency | None:
    """The retry identity of a request, or None without a key. ``request`` is what the answer
    depends on (the body's fields, as read)."""
    if key is None:
        return None
    if not KEY.match(key):
        raise InvalidInput("Idempotency-Key must be 8 to 128 letters, digits or _ . : -")
    content = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return Idempotency(
        organisation_id, actor, operation, key, hashlib.sha256(content.encode()).hexdigest()
    )


@dataclass
class _Gate:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


# Per service object (its store handle), so that two in one process behave as two instances.
_GATES: dict[tuple[int, str, str, str, str], _Gate] = {}


async def once(
    db: Database,
    idem: Idempotency | None,
    keys: list[str],
    make: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> tuple[int, dict[str, Any], bool]:
    """Answer a request once: ``make()`` (which records its answer with :func:`record`) for the
    first copy, the first answer for every other. Returns the status, the body and whether it
    is a replay."""
    if idem is None:
        return (*await make(), False)
    identity = (id(db), idem.organisation_id, idem.actor, idem.operation, idem.key_hash)
    gate = _GATES.setdefault(identity, _Gate())
    gate.users += 1
    try:
        async with gate.lock:
            async with db.read() as conn:
                first = await replay(conn, idem, keys)
            if first is not None:
                return (*first, True)
            try:
                return (*await make(), False)
            except (IntegrityError, ShowMeError):
                # Another instance's copy committed first (the unique key refused this one's
                # record, or what the first used up refused this one): answer as it did.
                async with db.read() as conn:
                    first = await replay(conn, idem, keys)
                if first is None:
                    raise
                return (*first, True)
    finally:
        gate.users -= 1
        if not gate.users:
            del _GATES[identity]


async def replay(
    conn: AsyncConnection, idem: Idempotency, keys: list[str]
) -> tuple[int, dict[str, Any]] | None:
    """The first answer to this request, or None when there was none. The same key with other
    content is a conflict, as for pictures."""
    row = (await conn.execute(select(idempotency_records).where(*idem._where()))).first()
    if row is None:
        return None
    if row.request_sha256 != idem.request_sha256:
        raise Conflict(
            "This Idempotency-Key was already used for another request.",
            code="idempotency_conflict",
        )
    answer = dict(row.response)
    if row.sealed_link is not None:
        link = unseal(row.sealed_link, PURPOSE, keys, idem.key.encode())
        # Gone only if every key that could open it was rotated away: say so rather than lie.
        answer["link"] = link.decode() if link is not None else None
    return int(row.status), answer


async def record(
    conn: AsyncConnection,
    idem: Idempotency,
    status: int,
    answer: dict[str, Any],
    keys: list[str],
    now: datetime | None = None,
) -> None:
    """Keep the first answer, in the caller's transaction (its unique key settles races)."""
    stored = dict(answer)
    link = stored.pop("link", None)
    await conn.execute(
        idempotency_records.insert().values(
            organisation_id=idem.organisation_id,
            actor=idem.actor,
            operation=idem.operation,
            key_hash=idem.key_hash,
            request_sha256=idem.request_sha256,
            status=status,
            response=stored,
            sealed_link=seal(link.encode(), PURPOSE, keys, idem.key.encode()) if link else None,
            created_at=now or utcnow(),
        )
    )


async def forget_old(conn: AsyncConnection, now: datetime | None = None) -> int:
    """Drop records past a day: a retry comes within seconds, not days."""
    result = await conn.execute(
        delete(idempotency_records).where(
            idempotency_records.c.created_at < (now or utcnow()) - KEEP
        )
    )
    return int(result.rowcount or 0)
