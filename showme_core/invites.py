"""Invites: a phone number asked to show the scene, with its link token and lifetime."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core import audit, sms, tokens
from showme_core.clock import as_utc, iso, utcnow
from showme_core.errors import Conflict, Gone, InvalidInput, NotAuthenticated, NotFound
from showme_core.idempotency import Idempotency, idempotency_for, once, record
from showme_core.ids import new_id
from showme_core.organisations import Organisation, get_organisation
from showme_core.phones import normalise, region_of
from showme_core.providers import InviteDraft, InviteRefused
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
    labels: dict[str, str] = field(default_factory=dict)

    def status(self, now: datetime | None = None) -> InviteStatus:
        if self.ended_at is not None:
            return InviteStatus.ENDED
        if (now or utcnow()) >= self.expires_at:
            return InviteStatus.EXPIRED
        return InviteStatus.OPENED if self.opened_at else InviteStatus.PENDING

    @property
    def live(self) -> bool:
        return self.status() in (InviteStatus.PENDING, InviteStatus.OPENED)

    def to_json(
        self, sms_row: dict[str, Any] | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "phone": self.phone,
            "incident_id": self.incident_id,
            "language": self.language,
            "status": self.status(now).value,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "opened_at": iso(self.opened_at),
            "ended_at": iso(self.ended_at),
            "legal_hold": self.legal_hold,
            "labels": dict(self.labels),
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
        labels=dict(row.labels or {}),
    )


MAX_LABELS = 16
MAX_LABEL_KEY = 40
MAX_LABEL_VALUE = 200


@dataclass(frozen=True)
class Answer:
    """What the API answers to a create or resend: status, body (with the link, this once) and
    whether it is the replay of a first answer (``Idempotent-Replayed``)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


async def create_invite_answer(
    showme: ShowMe,
    principal: Principal,
    *,
    phone: str,
    incident_id: str | None,
    language: str | None,
    send_sms: bool,
    idempotency_key: str | None = None,
) -> Answer:
    """Create an invite as the API does: with an ``Idempotency-Key``, a retry (or a racing copy)
    gets the first answer, and nothing is created, charged or sent twice."""
    idem = idempotency_for(
        principal.organisation_id,
        principal.actor,
        "invite.create",
        idempotency_key,
        {"phone": phone, "incident_id": incident_id, "language": language, "send_sms": send_sms},
    )

    async def make() -> tuple[int, dict[str, Any]]:
        invite, link, sms_row = await create_invite(
            showme,
            principal,
            phone=phone,
            incident_id=incident_id,
            language=language,
            send_sms=send_sms,
            idempotency=idem,
        )
        return 201, {**invite.to_json(sms_row), "link": link}

    return Answer(*await once(showme.db, idem, showme.settings.signing_keys(), make))


async def create_invite(
    showme: ShowMe,
    principal: Principal,
    *,
    phone: str,
    incident_id: str | None,
    language: str | None,
    send_sms: bool,
    idempotency: Idempotency | None = None,
) -> tuple[Invite, str, dict[str, Any] | None]:
    """Create an invite (and queue its SMS). Returns the invite, its link and its SMS row.

    Plugins may amend or refuse it first (``showme_amend_invite``). Everything happens in one
    transaction: a refusal (bad number, no credits, a plugin's) changes nothing. The link is built
    from ``public_url`` only, never from what a request says its host is.
    """
    base_url = showme.public_base()
    async with showme.db.read() as db:
        org = await get_organisation(db, principal.organisation_id)
    draft = InviteDraft(
        organisation_id=org.id,
        phone=normalise(phone, org.default_region),
        incident_id=_incident_id(incident_id),
        language=_language(language) or org.default_language,
        send_sms=send_sms,
        created_by=principal.actor,
    )
    try:
        await showme.plugins.amend_invite(showme, draft, principal)
    except InviteRefused as exc:
        raise InvalidInput(exc.reason, code="invite_refused") from exc
    # What a plugin set is checked like what a client sent.
    draft.phone = normalise(draft.phone, org.default_region)
    draft.incident_id = _incident_id(draft.incident_id)
    draft.language = _language(draft.language) or org.default_language
    draft.labels = _labels(draft.labels)
    if not org.allows_region(region_of(draft.phone)):
        allowed = ", ".join(org.allowed_countries or (org.default_region,))
        raise InvalidInput(
            f"Links may only be sent to numbers of {allowed}; {draft.phone} is not one of them.",
            code="country_not_allowed",
        )
    token, token_hash = tokens.mint()
    link = tokens.link_for(base_url, token)
    limits = _rate_limits(showme, principal, org, invite=True, sms=draft.send_sms)
    with showme.rate_limits.reserve(limits):
        return await _create(showme, principal, draft, token_hash, link, base_url, idempotency)


def _incident_id(incident_id: str | None) -> str | None:
    if incident_id is None:
        return None
    incident_id = incident_id.strip() or None
    if incident_id and len(incident_id) > MAX_INCIDENT_ID:
        raise InvalidInput(f"incident_id: at most {MAX_INCIDENT_ID} characters")
    return incident_id


def _language(language: str | None) -> str | None:
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(
            f"language must be one of {', '.join(LANGUAGES)}", code="unsupported_language"
        )
    return language


def _labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS or not all(
        isinstance(key, str)
        and isinstance(value, str)
        and 0 < len(key) <= MAX_LABEL_KEY
        and len(value) <= MAX_LABEL_VALUE
        for key, value in labels.items()
    ):
        raise InvalidInput(
            f"labels: at most {MAX_LABELS} texts, keys up to {MAX_LABEL_KEY} and values up to "
            f"{MAX_LABEL_VALUE} characters"
        )
    return dict(labels)


async def _create(
    showme: ShowMe,
    principal: Principal,
    draft: InviteDraft,
    token_hash: str,
    link: str,
    base_url: str,
    idempotency: Idempotency | None,
) -> tuple[Invite, str, dict[str, Any] | None]:
    async with showme.transaction() as tx:
        org = await get_organisation(tx.conn, principal.organisation_id)
        now = utcnow()
        invite = Invite(
            id=new_id(),
            organisation_id=org.id,
            phone=draft.phone,
            incident_id=draft.incident_id,
            language=draft.language,
            created_by=principal.actor,
            created_at=now,
            expires_at=now + timedelta(seconds=org.invite_ttl_seconds),
            opened_at=None,
            ended_at=None,
            labels=draft.labels,
        )
        await tx.conn.execute(
            invites.insert().values(
                id=invite.id,
                organisation_id=org.id,
                token_hash=token_hash,
                phone=invite.phone,
                incident_id=invite.incident_id,
                language=invite.language,
                created_by=principal.actor,
                created_via=principal.kind,
                created_at=now,
                expires_at=invite.expires_at,
                labels=invite.labels,
            )
        )
        await audit.record(
            tx.conn,
            organisation_id=org.id,
            actor=principal.actor,
            action="invite.create",
            subject=invite.id,
            send_sms=draft.send_sms,
        )
        outgoing = None
        sms_row = None
        if draft.send_sms:
            outgoing, sms_row = await sms.queue(
                tx,
                org,
                invite.id,
                invite.phone,
                invite.language,
                link,
                callback_base=_callback_base(base_url),
            )
        if idempotency is not None:
            await record(
                tx.conn,
                idempotency,
                201,
                {**invite.to_json(sms_row), "link": link},
                showme.settings.signing_keys(),
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
    conn: AsyncConnection,
    organisation_id: str,
    limit: int = 50,
    before: datetime | None = None,
    incident_id: str | None = None,
) -> list[Invite]:
    query = select(invites).where(invites.c.organisation_id == organisation_id)
    if incident_id is not None:
        query = query.where(invites.c.incident_id == incident_id)
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


async def resend_invite_answer(
    showme: ShowMe, principal: Principal, invite_id: str, *, idempotency_key: str | None = None
) -> Answer:
    """Resend as the API does; with an ``Idempotency-Key``, a retry gets the first answer and no
    second SMS (even once the new link was opened, which would refuse a new resend)."""
    idem = idempotency_for(
        principal.organisation_id,
        principal.actor,
        f"invite.resend:{invite_id}",
        idempotency_key,
        {"invite_id": invite_id},
    )

    async def make() -> tuple[int, dict[str, Any]]:
        invite, link, sms_row = await resend_invite(showme, principal, invite_id, idem)
        return 201, {**invite.to_json(sms_row), "link": link}

    return Answer(*await once(showme.db, idem, showme.settings.signing_keys(), make))


async def resend_invite(
    showme: ShowMe,
    principal: Principal,
    invite_id: str,
    idempotency: Idempotency | None = None,
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
            if idempotency is not None:
                await record(
                    tx.conn,
                    idempotency,
                    201,
                    {**invite.to_json(sms_row), "link": link},
                    showme.settings.signing_keys(),
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
