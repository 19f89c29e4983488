"""Organisations (PSAPs) and their SMS credits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core import audit
from showme_core.clock import as_utc, utcnow
from showme_core.errors import Conflict, InsufficientCredits, InvalidInput, NotFound
from showme_core.ids import new_id
from showme_core.phones import region_is_known
from showme_core.sms_templates import LANGUAGES
from showme_core.store.schema import credit_entries, organisations

DEFAULT_INVITE_TTL = 6 * 3600  # the seed's six hours
DEFAULT_RETENTION = 6 * 3600
INITIAL_TOPUP = 50
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class Organisation:
    id: str
    slug: str
    name: str
    default_region: str
    default_language: str
    invite_ttl_seconds: int
    retention_seconds: int
    sms_providers: list[str]
    sms_credits: int
    created_at: datetime
    video_audio: bool = False
    video_facing: str = "environment"
    allowed_countries: tuple[str, ...] = ()
    sms_on_unclear: str = "continue"
    plugin_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def settings_for(self, plugin: str) -> dict[str, Any]:
        """This organisation's settings block for ``plugin`` (empty when none)."""
        return dict(self.plugin_settings.get(plugin, {}))

    def allows_region(self, region: str | None) -> bool:
        """Whether links may be sent to numbers of ``region`` (abuse control)."""
        return region in (self.allowed_countries or (self.default_region,))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "default_region": self.default_region,
            "default_language": self.default_language,
            "invite_ttl_seconds": self.invite_ttl_seconds,
            "retention_seconds": self.retention_seconds,
            "sms_credits": self.sms_credits,
            "languages": list(LANGUAGES),
            "video": {"audio": self.video_audio, "facing": self.video_facing},
            "allowed_countries": list(self.allowed_countries or (self.default_region,)),
        }


def _from_row(row: Any) -> Organisation:
    return Organisation(
        id=row.id,
        slug=row.slug,
        name=row.name,
        default_region=row.default_region,
        default_language=row.default_language,
        invite_ttl_seconds=row.invite_ttl_seconds,
        retention_seconds=row.retention_seconds,
        sms_providers=list(row.sms_providers),
        sms_credits=row.sms_credits,
        created_at=as_utc(row.created_at),
        video_audio=bool(row.video_audio),
        video_facing=row.video_facing,
        allowed_countries=tuple(row.allowed_countries or ()),
        sms_on_unclear=row.sms_on_unclear,
        plugin_settings=dict(row.plugin_settings or {}),
    )


async def list_plugin_settings(conn: AsyncConnection) -> list[tuple[str, dict[str, Any]]]:
    """Every organisation's plugin settings blocks, by slug."""
    rows = await conn.execute(select(organisations.c.slug, organisations.c.plugin_settings))
    return [(row.slug, dict(row.plugin_settings or {})) for row in rows]


async def configure_plugin(
    conn: AsyncConnection,
    organisation_id: str,
    plugin: str,
    values: dict[str, Any] | None,
    *,
    actor: str = "cli",
) -> dict[str, dict[str, Any]]:
    """Set (``values``) or clear (``None``) an organisation's settings block for ``plugin``,
    audited; returns every block of the organisation."""
    org = await get_organisation(conn, organisation_id)
    blocks = dict(org.plugin_settings)
    if values is None:
        blocks.pop(plugin, None)
    else:
        blocks[plugin] = values
    await conn.execute(
        update(organisations)
        .where(organisations.c.id == organisation_id)
        .values(plugin_settings=blocks)
    )
    # The values may hold secrets: the audit says which keys changed, not what they became.
    await audit.record(
        conn,
        organisation_id=organisation_id,
        actor=actor,
        action="organisation.plugin_settings",
        subject=plugin,
        keys=sorted(values or {}),
    )
    return blocks


async def create_organisation(
    conn: AsyncConnection,
    *,
    slug: str,
    name: str,
    default_region: str,
    default_language: str = "en",
    invite_ttl_seconds: int = DEFAULT_INVITE_TTL,
    retention_seconds: int = DEFAULT_RETENTION,
    sms_providers: list[str] | None = None,
    initial_credits: int = INITIAL_TOPUP,
    video_audio: bool = False,
    video_facing: str = "environment",
    allowed_countries: list[str] | None = None,
    sms_on_unclear: str = "continue",
    actor: str = "cli",
) -> Organisation:
    if not _SLUG.match(slug):
        raise InvalidInput("slug: 2-63 lowercase letters, digits or '-'", code="invalid_slug")
    region = default_region.upper()
    if not region_is_known(region):
        raise InvalidInput(f"unknown phone region {default_region!r} (use e.g. BE, FR, NL, US)")
    if default_language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}")
    if invite_ttl_seconds < 60 or retention_seconds < 60:
        raise InvalidInput("invite lifetime and retention must be at least 60 seconds")
    if initial_credits < 0:
        raise InvalidInput("initial credits cannot be negative")
    countries = sorted({c.strip().upper() for c in allowed_countries or [] if c.strip()})
    unknown = [c for c in countries if not region_is_known(c)]
    if unknown:
        raise InvalidInput(f"unknown countries {', '.join(unknown)} (use e.g. BE, FR, NL, US)")
    if sms_on_unclear not in ("continue", "stop"):
        raise InvalidInput("after an unclear SMS failure: 'continue' or 'stop'")
    if video_facing not in ("environment", "user"):
        raise InvalidInput("the camera must be 'environment' (rear) or 'user' (front)")
    if await conn.scalar(select(organisations.c.id).where(organisations.c.slug == slug)):
        raise Conflict(f"an organisation with slug {slug!r} exists", code="slug_taken")
    org_id = new_id()
    await conn.execute(
        organisations.insert().values(
            id=org_id,
            slug=slug,
            name=name,
            default_region=region,
            default_language=default_language,
            invite_ttl_seconds=invite_ttl_seconds,
            retention_seconds=retention_seconds,
            sms_providers=sms_providers or ["outbox"],
            sms_credits=0,
            video_audio=video_audio,
            video_facing=video_facing,
            allowed_countries=countries or None,
            sms_on_unclear=sms_on_unclear,
            event_seq=0,
            created_at=utcnow(),
        )
    )
    await audit.record(conn, organisation_id=org_id, actor=actor, action="organisation.create")
    if initial_credits:
        await change_credits(conn, org_id, initial_credits, reason="topup", actor=actor)
    return await get_organisation(conn, org_id)


async def get_organisation(conn: AsyncConnection, org_id: str) -> Organisation:
    row = (await conn.execute(select(organisations).where(organisations.c.id == org_id))).first()
    if row is None:
        raise NotFound("no such organisation")
    return _from_row(row)


async def find_organisation(conn: AsyncConnection, slug: str) -> Organisation:
    row = (await conn.execute(select(organisations).where(organisations.c.slug == slug))).first()
    if row is None:
        raise NotFound(f"no organisation with slug {slug!r}")
    return _from_row(row)


async def change_credits(
    conn: AsyncConnection,
    org_id: str,
    delta: int,
    *,
    reason: str,
    actor: str,
    sms_message_id: str | None = None,
) -> int:
    """Add (or with a negative delta, take) credits atomically; returns the new balance.

    Taking never drives the balance below zero: the guarded UPDATE then matches no row and
    :class:`InsufficientCredits` is raised, with nothing changed.
    """
    stmt = (
        update(organisations)
        .where(organisations.c.id == org_id)
        .values(sms_credits=organisations.c.sms_credits + delta)
        .returning(organisations.c.sms_credits)
    )
    if delta < 0:
        stmt = stmt.where(organisations.c.sms_credits + delta >= 0)
    balance = (await conn.execute(stmt)).scalar_one_or_none()
    if balance is None:
        raise InsufficientCredits(
            "No SMS credits left for your organisation. The link was not sent; "
            "ask your administrator to add credits, or send the link another way."
        )
    await conn.execute(
        credit_entries.insert().values(
            organisation_id=org_id,
            delta=delta,
            balance=balance,
            reason=reason,
            sms_message_id=sms_message_id,
            created_at=utcnow(),
        )
    )
    await audit.record(
        conn, organisation_id=org_id, actor=actor, action=f"credits.{reason}", delta=delta
    )
    return int(balance)
