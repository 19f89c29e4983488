"""The phone that holds an invite's link.

The first device that opens the link, takes a live video seat or sends a picture holds the invite;
another phone waits until the dispatcher allows it (``docs/live.md``, "One phone per link"). The
holder is kept in the store as SHA-256 of the invite's id and the page's device id (so a phone's
fingerprints in two calls are unrelated), so that it survives a restart and
every instance sees the same one. A resend forgets it in the transaction that mints the new link
(:func:`showme_core.invites.resend_invite`).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core import audit
from showme_core.errors import Conflict, NotAuthenticated
from showme_core.store.schema import invites

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.invites import Invite

DEVICE_HEADER = "x-showme-device"
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
WAITING_MESSAGE = (
    "This link is in use on another phone. The dispatcher can allow this one; until then this "
    "phone cannot send pictures or video."
)


def fingerprint(device: str | None, invite_id: str) -> str | None:
    """What the store keeps of a page's device id for one invite; ``None`` for no id or a
    malformed one. Salted with the invite, so the same phone has unrelated fingerprints in
    different calls and different PSAPs: a stored fingerprint cannot follow a person around."""
    if device is None or not DEVICE_ID.match(device):
        return None
    return hashlib.sha256(f"{invite_id}:{device}".encode()).hexdigest()


def another_device() -> Conflict:
    """The refusal a waiting phone gets for a picture: the page says it is waiting."""
    return Conflict(WAITING_MESSAGE, code="another_device")


async def holder(
    conn: AsyncConnection, invite_id: str, token_hash: str | None = None
) -> str | None:
    """The fingerprint holding ``invite_id`` (``None`` while nobody does). With ``token_hash``,
    a link that was replaced by a resend meanwhile is refused as the HTTP API refuses it."""
    row = (
        await conn.execute(
            select(invites.c.device_hash, invites.c.token_hash).where(invites.c.id == invite_id)
        )
    ).first()
    if row is None or (token_hash is not None and row.token_hash != token_hash):
        raise NotAuthenticated("A new link was sent for this session.", code="link_replaced")
    found: str | None = row.device_hash
    return found


async def claim(
    conn: AsyncConnection,
    organisation_id: str,
    invite_id: str,
    device: str | None,
    token_hash: str | None = None,
) -> bool:
    """Whether the phone with fingerprint ``device`` holds the invite, claiming it when nobody
    does (call inside a write transaction). Without a device id a request is let through while
    the invite is unclaimed, and claims nothing."""
    held = await holder(conn, invite_id, token_hash)
    if held is None and device is not None:
        # Conditional: of two phones racing to claim, one wins and the other reads the winner.
        claimed = await conn.execute(
            update(invites)
            .where(invites.c.id == invite_id, invites.c.device_hash.is_(None))
            .values(device_hash=device)
        )
        if claimed.rowcount == 1:
            await audit.record(
                conn,
                organisation_id=organisation_id,
                actor="caller",
                action="invite.device_claimed",
                subject=invite_id,
                device=device[:16],
            )
            return True
        held = await holder(conn, invite_id, token_hash)
    return held is None or held == device


async def holds(
    showme: ShowMe,
    organisation_id: str,
    invite_id: str,
    device: str | None,
    token_hash: str | None = None,
) -> bool:
    """:func:`claim`, with a write transaction only when there is something to claim (a phone
    that already holds its invite, or a waiting one, costs one read)."""
    async with showme.db.read() as db:
        held = await holder(db, invite_id, token_hash)
    if held is not None or device is None:
        return held is None or held == device
    async with showme.transaction() as tx:
        return await claim(tx.conn, organisation_id, invite_id, device, token_hash)


async def require_device(showme: ShowMe, invite: Invite, device: str | None) -> None:
    """Refuse a caller request (a picture, a still, a snapshot) from a phone that does not hold
    the invite; the console is asked whether to allow it. ``device`` is the page's
    ``X-ShowMe-Device`` header as sent."""
    if not invite.live:
        return  # the picture path answers for a dead link, and for retries after it died
    found = fingerprint(device, invite.id)
    if not await holds(showme, invite.organisation_id, invite.id, found):
        if found is not None:
            await showme.hub.device_request(invite.id, found)
        raise another_device()


async def allow(
    showme: ShowMe, organisation_id: str, invite_id: str, device: str, actor: str
) -> None:
    """The dispatcher allowed the phone with fingerprint ``device``: it holds the invite now."""
    async with showme.transaction() as tx:
        await tx.conn.execute(
            update(invites)
            .where(invites.c.id == invite_id, invites.c.organisation_id == organisation_id)
            .values(device_hash=device)
        )
        await audit.record(
            tx.conn,
            organisation_id=organisation_id,
            actor=actor,
            action="invite.device_allowed",
            subject=invite_id,
            device=device[:16],
        )
