"""Webhook endpoints: per organisation, a URL, the events it wants, what it may see, and its
signing secrets, kept as ``plugin_state`` records of kind ``endpoint``.

A secret is made here, shown once (in the answer that creates or rotates it) and stored sealed
with the service's keys for that endpoint alone. Rotating keeps the previous secret signing
beside the new one for an overlap, so the receiver can switch without losing a delivery.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from showme_cad_webhook import signing
from showme_cad_webhook.addresses import AddressRefused, Resolver, checked_address, parse_url
from showme_cad_webhook.const import DELIVERY, DOMAIN, ENDPOINT, LEASE, PENDING, SEAL_PURPOSE
from showme_cad_webhook.records import every_record
from showme_cad_webhook.times import iso, parse_iso
from showme_core.errors import Conflict, InvalidInput, NotFound
from showme_core.event_types import CATALOGUE

if TYPE_CHECKING:
    from showme_cad_webhook.config import WebhookSettings
    from showme_core.app import ShowMe
    from showme_core.plugin_state import Record

log = structlog.get_logger("showme.cad_webhook")

ALL = "*"
MAX_FILTERS = 50
MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class SigningSecret:
    """One of an endpoint's secrets, sealed; ``expires_at`` is set once a newer one replaced it."""

    id: str
    sealed: str
    created_at: datetime
    expires_at: datetime | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sealed": self.sealed,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> SigningSecret:
        return cls(
            id=data["id"],
            sealed=data["sealed"],
            created_at=parse_iso(data["created_at"]),
            expires_at=parse_iso(data["expires_at"]) if data.get("expires_at") else None,
        )


@dataclass(frozen=True)
class Endpoint:
    """A receiver of one organisation's events."""

    id: str
    organisation_id: str
    url: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    event_types: tuple[str, ...] = (ALL,)
    # What may leave ShowMe: the caller's number and locations are removed unless allowed.
    include_phone: bool = False
    include_locations: bool = False
    # Also push the incident's EIDO (the whole document) on every change of an incident.
    push_eido: bool = False
    active: bool = True
    created_by: str | None = None
    secrets: tuple[SigningSecret, ...] = field(default_factory=tuple)

    def wants(self, event_type: str) -> bool:
        """Whether the endpoint's filters let ``event_type`` through."""
        for wanted in self.event_types:
            if wanted in (ALL, event_type):
                return True
            if wanted.endswith(".*") and event_type.startswith(wanted[:-1]):
                return True
        return False

    def live_secrets(self, now: datetime) -> list[SigningSecret]:
        """The secrets that sign now, newest first."""
        alive = [s for s in self.secrets if s.expires_at is None or s.expires_at > now]
        return sorted(alive, key=lambda s: s.created_at, reverse=True)

    def to_data(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "description": self.description,
            "event_types": list(self.event_types),
            "include_phone": self.include_phone,
            "include_locations": self.include_locations,
            "push_eido": self.push_eido,
            "active": self.active,
            "created_by": self.created_by,
            "secrets": [s.to_data() for s in self.secrets],
        }

    @classmethod
    def from_record(cls, record: Record) -> Endpoint:
        data = record.data
        return cls(
            id=record.id,
            organisation_id=record.organisation_id or "",
            url=data["url"],
            created_at=record.created_at,
            updated_at=record.updated_at,
            description=data.get("description", ""),
            event_types=tuple(data.get("event_types", [ALL])),
            include_phone=bool(data.get("include_phone")),
            include_locations=bool(data.get("include_locations")),
            push_eido=bool(data.get("push_eido")),
            active=bool(data.get("active", True)),
            created_by=data.get("created_by"),
            secrets=tuple(SigningSecret.from_data(s) for s in data.get("secrets", [])),
        )

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The endpoint as admins see it: never a secret, only which ones sign and until when."""
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "event_types": list(self.event_types),
            "include_phone": self.include_phone,
            "include_locations": self.include_locations,
            "push_eido": self.push_eido,
            "active": self.active,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "created_by": self.created_by,
            "secrets": [
                {
                    "id": s.id,
                    "created_at": iso(s.created_at),
                    "expires_at": iso(s.expires_at),
                }
                for s in self.live_secrets(now)
            ],
        }


def check_event_types(event_types: list[str]) -> tuple[str, ...]:
    """The filters, each a catalogue type, ``prefix.*`` or ``*``; an empty list takes no event
    (an endpoint that only wants the EIDO)."""
    if len(event_types) > MAX_FILTERS:
        raise InvalidInput(f"At most {MAX_FILTERS} event type filters.")
    checked: list[str] = []
    for wanted in event_types:
        known = (
            wanted == ALL
            or wanted in CATALOGUE
            or (wanted.endswith(".*") and any(t.startswith(wanted[:-1]) for t in CATALOGUE))
        )
        if not known:
            raise InvalidInput(
                f"{wanted!r} is not an event type (see the event catalogue), a 'prefix.*' or '*'.",
                code="unknown_event_type",
            )
        if wanted not in checked:
            checked.append(wanted)
    return tuple(checked)


class Endpoints:
    """The endpoints of every organisation, through ``showme.plugin_state``."""

    def __init__(self, showme: ShowMe, settings: WebhookSettings, resolver: Resolver) -> None:
        self._showme = showme
        self._settings = settings
        self._resolver = resolver
        self._state = showme.plugin_state(DOMAIN)

    async def check_url(self, url: str) -> str:
        """Refuse a URL that may not receive webhooks now (``AddressRefused`` as a 422)."""
        allow = self._settings.allow_insecure_loopback
        try:
            target = parse_url(url, allow_insecure=allow)
            await checked_address(target, self._resolver, allow_loopback=allow)
        except AddressRefused as exc:
            raise InvalidInput(str(exc), code="url_refused") from None
        return str(target.url)

    def _seal(self, endpoint_id: str, key: bytes, now: datetime) -> SigningSecret:
        sealed = self._showme.seal(key, SEAL_PURPOSE + endpoint_id)
        return SigningSecret(id=secrets.token_hex(4), sealed=sealed, created_at=now)

    def keys(self, endpoint: Endpoint) -> list[bytes]:
        """The signing keys of ``endpoint`` now, newest first (those that still open)."""
        found = []
        for secret in endpoint.live_secrets(self._showme.now()):
            key = self._showme.unseal(secret.sealed, SEAL_PURPOSE + endpoint.id)
            if key is None:
                log.error(
                    "a webhook signing secret cannot be opened: were secret_keys changed?",
                    endpoint_id=endpoint.id,
                    secret_id=secret.id,
                )
                continue
            found.append(key)
        return found

    async def create(
        self,
        organisation_id: str,
        *,
        url: str,
        description: str = "",
        event_types: list[str] | None = None,
        include_phone: bool = False,
        include_locations: bool = False,
        push_eido: bool = False,
        active: bool = True,
        actor: str | None = None,
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (``whsec_...``), which is shown this once."""
        await self._showme.organisation(organisation_id)  # 404 for an unknown organisation
        checked_url = await self.check_url(url)
        filters = check_event_types([ALL] if event_types is None else event_types)
        existing = await self._state.list(ENDPOINT, organisation_id=organisation_id)
        if len(existing) >= self._settings.max_endpoints_per_organisation:
            raise Conflict(
                f"An organisation may have at most "
                f"{self._settings.max_endpoints_per_organisation} webhook endpoints.",
                code="too_many_endpoints",
            )
        now = self._showme.now()
        endpoint_id = secrets.token_hex(16)
        key = signing.new_key()
        endpoint = Endpoint(
            id=endpoint_id,
            organisation_id=organisation_id,
            url=checked_url,
            created_at=now,
            updated_at=now,
            description=description[:MAX_DESCRIPTION],
            event_types=filters,
            include_phone=include_phone,
            include_locations=include_locations,
            push_eido=push_eido,
            active=active,
            created_by=actor,
            secrets=(self._seal(endpoint_id, key, now),),
        )
        record = await self._state.add(
            ENDPOINT, endpoint.to_data(), organisation_id=organisation_id, id=endpoint_id
        )
        log.info(
            "webhook endpoint created",
            endpoint_id=endpoint_id,
            organisation_id=organisation_id,
            actor=actor,
        )
        await self._showme.audit(
            organisation_id,
            actor or "system",
            "webhook_endpoint.create",
            endpoint_id,
            url=checked_url,
        )
        return Endpoint.from_record(record), signing.shown(key)

    async def find(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint, whatever its organisation (for the adapter's own work)."""
        record = await self._state.get(ENDPOINT, endpoint_id)
        return Endpoint.from_record(record) if record else None

    async def get(self, organisation_id: str, endpoint_id: str) -> Endpoint:
        """The endpoint of this organisation; another organisation's is not found (404)."""
        found = await self.find(endpoint_id)
        if found is None or found.organisation_id != organisation_id:
            raise NotFound("No such webhook endpoint.", code="endpoint_not_found")
        return found

    async def every(self, organisation_id: str | None = None) -> list[Endpoint]:
        """One organisation's endpoints (every organisation's with None), newest first."""
        return [
            Endpoint.from_record(record)
            async for record in every_record(self._state, ENDPOINT, organisation_id=organisation_id)
        ]

    async def change(
        self, organisation_id: str, endpoint_id: str, actor: str | None = None, **changes: Any
    ) -> Endpoint:
        """Change what is given (``url``, ``description``, ``event_types``, ``include_phone``,
        ``include_locations``, ``push_eido``, ``active``); the rest stays."""
        if "url" in changes:
            changes["url"] = await self.check_url(changes["url"])
        if "event_types" in changes:
            changes["event_types"] = check_event_types(changes["event_types"])
        if "description" in changes:
            changes["description"] = changes["description"][:MAX_DESCRIPTION]
        async with self._state.transaction() as conn:
            record = await self._state.get(
                ENDPOINT, endpoint_id, organisation_id=organisation_id, for_update=True, conn=conn
            )
            if record is None or record.organisation_id != organisation_id:
                raise NotFound("No such webhook endpoint.", code="endpoint_not_found")
            changed = replace(Endpoint.from_record(record), **changes)
            await self._state.update(ENDPOINT, endpoint_id, changed.to_data(), conn=conn)
        log.info(
            "webhook endpoint changed",
            endpoint_id=endpoint_id,
            organisation_id=organisation_id,
            actor=actor,
            fields=sorted(changes),
        )
        await self._showme.audit(
            organisation_id,
            actor or "system",
            "webhook_endpoint.change",
            endpoint_id,
            fields=sorted(changes),
        )
        return replace(changed, updated_at=self._showme.now())

    async def rotate(
        self,
        organisation_id: str,
        endpoint_id: str,
        overlap_seconds: float | None = None,
        actor: str | None = None,
    ) -> tuple[Endpoint, str]:
        """A new secret (shown this once); the ones before it keep signing for the overlap."""
        overlap = (
            self._settings.rotation_overlap_seconds if overlap_seconds is None else overlap_seconds
        )
        now = self._showme.now()
        key = signing.new_key()
        until = now + timedelta(seconds=overlap)
        async with self._state.transaction() as conn:
            record = await self._state.get(
                ENDPOINT, endpoint_id, organisation_id=organisation_id, for_update=True, conn=conn
            )
            if record is None or record.organisation_id != organisation_id:
                raise NotFound("No such webhook endpoint.", code="endpoint_not_found")
            endpoint = Endpoint.from_record(record)
            kept = tuple(
                replace(s, expires_at=until if s.expires_at is None else min(s.expires_at, until))
                for s in endpoint.live_secrets(now)
            )
            rotated = replace(endpoint, secrets=(self._seal(endpoint_id, key, now), *kept))
            await self._state.update(ENDPOINT, endpoint_id, rotated.to_data(), conn=conn)
        log.info(
            "webhook signing secret rotated",
            endpoint_id=endpoint_id,
            organisation_id=organisation_id,
            actor=actor,
            overlap_seconds=overlap,
        )
        await self._showme.audit(
            organisation_id,
            actor or "system",
            "webhook_endpoint.rotate",
            endpoint_id,
            overlap_seconds=overlap,
        )
        return rotated, signing.shown(key)

    async def delete(
        self, organisation_id: str, endpoint_id: str, actor: str | None = None
    ) -> None:
        """Remove the endpoint with its queue and its deliveries' history."""
        await self.get(organisation_id, endpoint_id)
        await self._state.delete(ENDPOINT, endpoint_id)
        # The endpoint record goes first: a sender that still runs stops at its next look.
        for kind in (PENDING + endpoint_id, DELIVERY + endpoint_id, LEASE + endpoint_id):
            while True:
                batch = await self._state.list(kind, limit=500)
                if not batch:
                    break
                async with self._state.transaction() as conn:
                    for record in batch:
                        await self._state.delete(kind, record.id, conn=conn)
        log.info(
            "webhook endpoint deleted",
            endpoint_id=endpoint_id,
            organisation_id=organisation_id,
            actor=actor,
        )
        await self._showme.audit(
            organisation_id, actor or "system", "webhook_endpoint.delete", endpoint_id
        )
