"""The background sweep of each instance: what time makes due.

Every ``retention_sweep_seconds`` (and at start-up, so a restart after a crash cleans up before
the first interval): invites that expired are announced (``invite.expired``, once), media past
retention is purged, idempotency records past a day are forgotten, and, at start-up and then once
per ``orphan_grace_seconds``, bytes a crash left without a row are removed. Every step is safe on
several instances at once; ``showme purge`` runs one sweep by hand.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select, update

from showme_core import audit
from showme_core.clock import utcnow
from showme_core.idempotency import forget_old
from showme_core.invites import get_invite
from showme_core.media import purge_expired, remove_orphans
from showme_core.store.schema import invites

if TYPE_CHECKING:
    from showme_core.app import ShowMe

log = structlog.get_logger("showme.sweeps")


async def announce_expired(showme: ShowMe, now: datetime | None = None) -> int:
    """Emit ``invite.expired`` once for each invite that reached its expiry without being ended;
    returns how many. The row lock and the marker make it once, whichever instance sweeps."""
    now = now or utcnow()
    async with showme.db.read() as db:
        due = (
            await db.execute(
                select(invites.c.id, invites.c.organisation_id).where(
                    invites.c.expires_at <= now,
                    invites.c.ended_at.is_(None),
                    invites.c.expiry_announced_at.is_(None),
                )
            )
        ).all()
    announced = 0
    for invite_id, organisation_id in due:
        async with showme.transaction() as tx:
            invite = await get_invite(tx.conn, organisation_id, invite_id, for_update=True)
            marked = await tx.conn.execute(
                update(invites)
                .where(invites.c.id == invite_id, invites.c.expiry_announced_at.is_(None))
                .values(expiry_announced_at=now)
            )
            if not marked.rowcount or invite.ended_at is not None:
                continue  # another instance announced it, or it was ended meanwhile
            await audit.record(
                tx.conn,
                organisation_id=organisation_id,
                actor="system:expiry",
                action="invite.expire",
                subject=invite_id,
            )
            await tx.event(
                organisation_id, "invite.expired", {"invite": invite.to_json(now=now)}, invite_id
            )
        announced += 1
    return announced


async def sweep(showme: ShowMe, *, orphans: bool = True, now: datetime | None = None) -> None:
    """One round: expiries, retention, old idempotency records, then (when asked) orphans;
    ``now`` is for tests that need the round to happen later than it is."""
    expired = await announce_expired(showme, now)
    if expired:
        log.info("invites expired", count=expired)
    purged = await purge_expired(showme, now)
    if purged:
        log.info("retention purge", purged=purged)
    async with showme.db.transaction() as conn:
        await forget_old(conn, now)
    if orphans:
        await remove_orphans(showme)
    showme.metrics.retention_sweeps.inc()


async def sweep_loop(showme: ShowMe, every: float) -> None:
    """Sweep for as long as the service runs, starting at once. Orphans are looked for at
    start-up and then once per grace period: listing every stored key each minute would cost
    more than the rare crash it cleans up after."""
    orphans_at = -math.inf
    while True:
        now = time.monotonic()
        due = now - orphans_at >= showme.settings.orphan_grace_seconds
        if due:
            orphans_at = now
        try:
            await sweep(showme, orphans=due)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweep failed; will try again")
        await asyncio.sleep(every)
