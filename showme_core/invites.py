"""Invites: a phone number asked to show the scene, with its link token and lifetime."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core import audit, sms, tokens
from showme_core.clock import as_utc, iso, utcnow
from showme_core.errors import Conflict, Gone, InvalidInput, NotAuthenticated, NotFound
from showme_core.ids import new_id
from showme_core.organisations import Organisation, get_organisation
from showme_core.phones import normalise, region_of
from showme_core.sms_templates import LANGUAGES
from showme_core.store.schema import invites, sms_messages

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.auth import Principal

MAX_INCIDENT_ID = 100


class InviteStatus(enum.StrEnum):
    PENDING = "pending"
    OPENED = "opened"
    ENDED = "ended"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Invite:
    id: str
    organisation_id: str
    phone: str
    incident_id: str | None
    language: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime
    opened_at: datetime | None
    ended_at: datetime | None
    legal_hold: bool = False

    def status(self, now: datetime | None = None) -> InviteStatus:
        if self.ended_at is not None:
            return InviteStatus.ENDED
        if (now or utcnow()) >= self.expires_at:
            return InviteStatus.EXPIRED
        return InviteStatus.OPENED if self.opened_at else InviteStatus.PENDING

    @property
    def live(self) -> bool:
        return self.status() in (InviteStatus.PENDING, InviteStatus.OPENED)

    def to_json(self, sms_row: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "phone": self.phone,
            "incident_id": self.incident_id,
            "language": self.language,
            "status": self.status().value,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "opened_at": iso(self.opened_at),
            "ended_at": iso(self.ended_at),
            "legal_hold": self.legal_hold,
            "sms": sms_row,
        }


def _invite(row: Any) -> Invite:
    return Invite(
        id=row.id,
        organisation_id=row.organisation_id,
        phone=row.phone,
        incident_id=row.incident_id,
        language=row.language,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        opened_at=as_utc(row.opened_at) if row.opened_at else None,
        ended_at=as_utc(row.ended_at) if row.ended_at else None,
        legal_hold=bool(row.legal_hold),
    )


async def create_invite(
    showme: ShowMe,
    principal: Principal,
    *,
    phone: str,
    incident_id: str | None,
    language: str | None,
    send_sms: bool,
) -> tuple[Invite, str, dict[str, Any] | None]:
    """Create an invite (and queue its SMS). Returns the invite, its link and its SMS row.

    Everything happens in one transaction: a refusal (bad number, no credits) changes nothing.
    The link is built from ``public_url`` only, never from what a request says its host is.
    """
    if incident_id is not None:
        incident_id = incident_id.strip() or None
        if incident_id and len(incident_id) > MAX_INCIDENT_ID:
            raise InvalidInput(f"incident_id: at most {MAX_INCIDENT_ID} characters")
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(
            f"language must be one of {', '.join(LANGUAGES)}", code="unsupported_language"
        )
    base_url = showme.public_base()
    token, token_hash = tokens.mint()
    link = tokens.link_for(base_url, token)
    async with showme.db.read() as db:
        org = await get_organisation(db, principal.organisation_id)
    e164 = normalise(phone, org.default_region)
    if not org.allows_region(region_of(e164)):
        allowed = ", ".join(org.allowed_countries or (org.default_region,))
        raise InvalidInput(
            f"Links may only be sent to numbers of {allowed}; {e164} is not one of them.",
            code="country_not_allowed",
        )
    limits = _rate_limits(showme, principal, org, invite=True, sms=send_sms)
    with showme.rate_limits.reserve(limits):
        return await _create(
            showme, principal, token_hash, link, e164, incident_id, language, send_sms, base_url
        )


async def _create(
    showme: ShowMe,
    principal: Principal,
    token_hash: str,
    link: str,
    e164: str,
    incident_id: str | None,
    language: str | None,
    send_sms: bool,
    base_url: str,
) -> tuple[Invite, str, dict[str, Any] | None]:
    async with showme.transaction() as tx:
        org = await get_organisation(tx.conn, principal.organisation_id)
        now = utcnow()
        invite = Invite(
            id=new_id(),
            organisation_id=org.id,
            phone=e164,
            incident_id=incident_id,
            language=language or org.default_language,
            created_by=principal.actor,
            created_at=now,
            expires_at=now + timedelta(seconds=org.invite_ttl_seconds),
            opened_at=None,
            ended_at=None,
        )
        await tx.conn.execute(
            invites.insert().values(
                id=invite.id,
                organisation_id=org.id,
                token_hash=token_hash,
                phone=e164,
                incident_id=incident_id,
                language=invite.language,
                created_by=principal.actor,
                created_via=principal.kind,
                created_at=now,
                expires_at=invite.expires_at,
            )
        )
        await audit.record(
            tx.conn,
            organisation_id=org.id,
            actor=principal.actor,
            action="invite.create",
            subject=invite.id,
            send_sms=send_sms,
        )
        outgoing = None
        sms_row = None
        if send_sms:
            outgoing, sms_row = await sms.queue(
                tx,
                org,
                invite.id,
                e164,
                invite.language,
                link,
                callback_base=_callback_base(base_url),
            )
        await tx.event(org.id, "invite.created", {"invite": invite.to_json(sms_row)}, invite.id)
    if outgoing is not None:
        showme.spawn(
            sms.deliver(showme, outgoing, org.sms_providers, org.sms_on_unclear),
            name="sms-deliver",
        )
    return invite, link, sms_row


async def get_invite(
    conn: AsyncConnection, organisation_id: str, invite_id: str, *, for_update: bool = False
) -> Invite:
    """The invite, only if it belongs to ``organisation_id`` (else: not found, never forbidden,
    so that ids of other organisations are not even confirmed to exist)."""
    query = select(invites).where(
        invites.c.id == invite_id, invites.c.organisation_id == organisation_id
    )
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise NotFound("No such invite.", code="invite_not_found")
    return _invite(row)


async def list_invites(
    conn: AsyncConnection, organisation_id: str, limit: int = 50, before: datetime | None = None
) -> list[Invite]:
    query = select(invites).where(invites.c.organisation_id == organisation_id)
    if before is not None:
        # SQLite compares stored UTC wall-clock times: give it UTC too.
        query = query.where(invites.c.created_at < as_utc(before))
    rows = await conn.execute(
        query.order_by(invites.c.created_at.desc(), invites.c.id.desc()).limit(limit)
    )
    return [_invite(row) for row in rows]


async def latest_sms(conn: AsyncConnection, invite_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest SMS of each invite, as JSON, keyed by invite id."""
    if not invite_ids:
        return {}
    rows = await conn.execute(
        select(sms_messages)
        .where(sms_messages.c.invite_id.in_(invite_ids))
        .order_by(sms_messages.c.created_at)
    )
    return {row.invite_id: sms.sms_json(row) for row in rows}


async def end_invite(showme: ShowMe, principal: Principal, invite_id: str) -> Invite:
    """End the invite: its link stops working at once. Ending twice is harmless."""
    async with showme.transaction() as tx:
        invite = await get_invite(tx.conn, principal.organisation_id, invite_id, for_update=True)
        if invite.ended_at is not None:
            return invite
        now = utcnow()
        await tx.conn.execute(
            update(invites)
            .where(invites.c.id == invite.id)
            .values(ended_at=now, ended_by=principal.actor)
        )
        ended = await get_invite(tx.conn, principal.organisation_id, invite_id)
        await audit.record(
            tx.conn,
            organisation_id=invite.organisation_id,
            actor=principal.actor,
            action="invite.end",
            subject=invite.id,
        )
        await tx.event(
            invite.organisation_id, "invite.ended", {"invite": ended.to_json()}, invite.id
        )
    return ended


async def resend_invite(
    showme: ShowMe, principal: Principal, invite_id: str
) -> tuple[Invite, str, dict[str, Any] | None]:
    """A new link for a live invite, sent by SMS; the previous link stops working. Charged and
    rate-limited like the first."""
    async with showme.db.read() as db:
        org = await get_organisation(db, principal.organisation_id)
        found = await get_invite(db, principal.organisation_id, invite_id)
    _resendable(found, org)
    base_url = showme.public_base()
    token, token_hash = tokens.mint()
    link = tokens.link_for(base_url, token)
    with showme.rate_limits.reserve(_rate_limits(showme, principal, org, invite=False, sms=True)):
        async with showme.transaction() as tx:
            invite = await get_invite(tx.conn, org.id, invite_id, for_update=True)
            _resendable(invite, org)
            # The phone that held the old link is forgotten with it: the new link works on
            # whichever phone opens it first (the old sockets are closed once this commits).
            await tx.conn.execute(
                update(invites)
                .where(invites.c.id == invite.id)
                .values(token_hash=token_hash, device_hash=None)
            )
            await audit.record(
                tx.conn,
                organisation_id=org.id,
                actor=principal.actor,
                action="invite.resend",
                subject=invite.id,
            )
            outgoing, sms_row = await sms.queue(
                tx,
                org,
                invite.id,
                invite.phone,
                invite.language,
                link,
                callback_base=_callback_base(base_url),
            )
            await tx.event(org.id, "invite.resent", {"invite": invite.to_json(sms_row)}, invite.id)
    showme.spawn(
        sms.deliver(showme, outgoing, org.sms_providers, org.sms_on_unclear), name="sms-deliver"
    )
    return invite, link, sms_row


RateChecks = list[tuple[str, list[tuple[int, float]], str, str]]


def _rate_limits(
    showme: ShowMe, principal: Principal, org: Organisation, *, invite: bool, sms: bool
) -> RateChecks:
    """What a new link counts against, per sender and per organisation: every invite the invite
    limits (each opens upload slots and a signaling room), every SMS the SMS limits."""
    settings = showme.settings
    kinds = [
        ("invites", settings.invite_rate_per_sender, settings.invite_rate_per_organisation, invite),
        ("SMS links", settings.sms_rate_per_sender, settings.sms_rate_per_organisation, sms),
    ]
    checks: RateChecks = []
    for what, per_sender, per_organisation, counts in kinds:
        if counts:
            checks.append((f"{what}:{principal.actor}", per_sender, what, "you"))
            checks.append((f"{what}:org:{org.id}", per_organisation, what, "your organisation"))
    return checks


def _callback_base(base_url: str) -> str:
    return f"{base_url}/api/v1/sms/callbacks"


def _resendable(invite: Invite, org: Organisation) -> None:
    require_live(invite)
    if invite.status() is InviteStatus.OPENED:
        # The caller has the link and uses it: a new one would cut them off.
        raise Conflict(
            "The caller has already opened the link; it still works.", code="already_opened"
        )
    if not org.allows_region(region_of(invite.phone)):
        raise InvalidInput(
            f"Links may no longer be sent to {invite.phone}'s country.",
            code="country_not_allowed",
        )


async def set_legal_hold(
    showme: ShowMe, principal: Principal, invite_id: str, hold: bool, reason: str | None
) -> Invite:
    """Put an invite's media on legal hold (retention will not purge it), or lift the hold."""
    async with showme.transaction() as tx:
        invite = await get_invite(tx.conn, principal.organisation_id, invite_id, for_update=True)
        if invite.legal_hold == hold:
            return invite
        await tx.conn.execute(
            update(invites)
            .where(invites.c.id == invite.id)
            .values(
                legal_hold=hold,
                legal_hold_by=principal.actor if hold else None,
                legal_hold_at=utcnow() if hold else None,
            )
        )
        changed = await get_invite(tx.conn, principal.organisation_id, invite_id)
        await audit.record(
            tx.conn,
            organisation_id=invite.organisation_id,
            actor=principal.actor,
            action="invite.legal_hold" if hold else "invite.legal_hold_lifted",
            subject=invite.id,
            reason=reason,
        )
        await tx.event(
            invite.organisation_id, "invite.legal_hold", {"invite": changed.to_json()}, invite.id
        )
    return changed


async def invite_by_token(conn: AsyncConnection, token: str, *, for_update: bool = False) -> Invite:
    """The invite a caller's token belongs to, live or not; a forged token is refused."""
    if not tokens.looks_like_token(token):
        raise NotAuthenticated("This link is not valid.", code="invalid_link")
    query = select(invites).where(invites.c.token_hash == tokens.hash_token(token))
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise NotAuthenticated("This link is not valid.", code="invalid_link")
    return _invite(row)


def require_live(invite: Invite) -> Invite:
    """Refuse a caller whose session has ended or expired."""
    status = invite.status()
    if status is InviteStatus.ENDED:
        raise Gone("The emergency service has ended this session.", code="link_ended")
    if status is InviteStatus.EXPIRED:
        raise Gone("This link has expired.", code="link_expired")
    return invite


async def invite_for_token(
    conn: AsyncConnection, token: str, *, for_update: bool = False
) -> Invite:
    """The live invite a caller's token belongs to, or a clear refusal."""
    invite = await invite_by_token(conn, token, for_update=for_update)
    status = invite.status()
    if status is InviteStatus.ENDED:
        raise Gone("The emergency service has ended this session.", code="link_ended")
    if status is InviteStatus.EXPIRED:
        raise Gone("This link has expired.", code="link_expired")
    return invite


async def open_invite(
    showme: ShowMe, token: str, device: str | None = None
) -> tuple[Invite, Organisation, bool]:
    """Record that the caller's page presented its token (only a script can: bots don't count),
    and whether ``device`` (the page's device id) holds the invite: the first phone claims it,
    another one waits until the dispatcher allows it, and the console is asked."""
    from showme_core import devices  # the phone's side of the invite, which it imports

    async with showme.transaction() as tx:
        invite = await invite_for_token(tx.conn, token, for_update=True)
        org = await get_organisation(tx.conn, invite.organisation_id)
        found = devices.fingerprint(device, invite.id)
        holds = await devices.claim(tx.conn, org.id, invite.id, found)
        if invite.opened_at is None:
            now = utcnow()
            await tx.conn.execute(
                update(invites).where(invites.c.id == invite.id).values(opened_at=now)
            )
            invite = await get_invite(tx.conn, org.id, invite.id)
            await audit.record(
                tx.conn,
                organisation_id=org.id,
                actor="caller",
                action="invite.open",
                subject=invite.id,
            )
            await tx.event(org.id, "invite.opened", {"invite": invite.to_json()}, invite.id)
    if not holds and found is not None:
        await showme.hub.device_request(invite.id, found)
    return invite, org, holds
