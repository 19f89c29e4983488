"""What a plugin may use on the service object (``docs/plugins.md``, "The service object").

Hooks hand plugins the :class:`~showme_core.app.ShowMe` of their instance. Of it, a plugin may use
what :data:`PUBLIC_SURFACE` lists and nothing else: the rest is the core's own and may change in
any release. A test reads every built-in plugin and adapter and fails when one reaches outside it,
so the surface is enough for real plugins and stays honest.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from showme_core.clock import utcnow

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine

    from prometheus_client import CollectorRegistry
    from sqlalchemy.ext.asyncio import AsyncConnection
    from starlette.requests import HTTPConnection

    from showme_core.auth import Principal
    from showme_core.config import Settings
    from showme_core.events import Event
    from showme_core.incidents import Incident
    from showme_core.organisations import Organisation
    from showme_core.plugin_state import PluginState
    from showme_core.providers import StorageBackend
    from showme_core.store import Database


class ServiceSurface:
    """The service object's methods for plugins; :class:`~showme_core.app.ShowMe` has them."""

    # Provided by ShowMe (declared for type checkers).
    settings: Settings
    storage: StorageBackend
    db: Database
    _states: dict[str, PluginState]

    if TYPE_CHECKING:  # ShowMe's own, part of the surface too

        def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]: ...

        def public_base(self) -> str: ...

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The instance's Prometheus registry, for a plugin's own metrics."""
        return self.metrics.registry  # type: ignore[attr-defined, no-any-return]

    def now(self) -> datetime:
        """The time, in UTC (one clock for the core and its plugins)."""
        return utcnow()

    def plugin_state(self, plugin: str) -> PluginState:
        """The records ``plugin`` keeps in the store (``showme_core.plugin_state``)."""
        from showme_core.plugin_state import PluginState

        if plugin not in self._states:
            self._states[plugin] = PluginState(self.db, plugin)
        return self._states[plugin]

    async def organisation(self, organisation_id: str) -> Organisation:
        """An organisation (its name, region, language, and ``settings_for(plugin)``)."""
        from showme_core.organisations import get_organisation

        async with self.db.read() as db:
            return await get_organisation(db, organisation_id)

    async def audit(
        self,
        organisation_id: str | None,
        actor: str,
        action: str,
        subject: str | None = None,
        *,
        conn: AsyncConnection | None = None,
        **details: Any,
    ) -> None:
        """Write a row of the audit trail (who did what to which thing, with JSON ``details``;
        never a secret), in ``conn``'s transaction when given (``plugin_state(...).transaction()``)
        so that it stands or falls with the change it records. Name actions
        ``<plugin thing>.<verb>``, actors as the core does (``user:<id>``, ``api_key:<id>``,
        ``cli``)."""
        from showme_core.audit import record

        if conn is not None:
            await record(
                conn,
                organisation_id=organisation_id,
                actor=actor,
                action=action,
                subject=subject,
                **details,
            )
            return
        async with self.db.transaction() as fresh:
            await record(
                fresh,
                organisation_id=organisation_id,
                actor=actor,
                action=action,
                subject=subject,
                **details,
            )

    async def organisation_by_slug(self, slug: str) -> Organisation:
        """An organisation by the slug operators type (``--org north``); ``404`` when none."""
        from showme_core.organisations import find_organisation

        async with self.db.read() as db:
            return await find_organisation(db, slug)

    async def organisation_settings(self, organisation_id: str, plugin: str) -> dict[str, Any]:
        """``plugin``'s settings for one organisation: the service's block, with the keys the
        organisation's own block sets (``showme org configure``) taking precedence."""
        org = await self.organisation(organisation_id)
        return {**self.settings.settings_for(plugin), **org.settings_for(plugin)}

    async def principal(self, request: HTTPConnection, scope: str) -> Principal:
        """Who calls a plugin's route: an API key with ``scope`` or a signed-in user, as the REST
        API checks them (``401``/``403`` answered by the core's error handler)."""
        from showme_core.web.auth import require_principal

        return await require_principal(request, scope)

    async def events_after(self, organisation_id: str, after: int, limit: int = 100) -> list[Event]:
        """An organisation's events after id ``after``, in order (at most ``limit``)."""
        from showme_core.events import events_after

        async with self.db.read() as db:
            return await events_after(db, organisation_id, after, limit=min(limit, 500))

    async def incident(self, organisation_id: str, incident_id: str) -> Incident:
        """What ShowMe knows of a CAD incident (``404 incident_not_found`` when nothing)."""
        from showme_core.incidents import get_incident

        async with self.db.read() as db:
            return await get_incident(db, organisation_id, incident_id)

    async def eido(
        self,
        organisation_id: str,
        incident_id: str,
        *,
        include_phone: bool = False,
        include_locations: bool = False,
    ) -> dict[str, Any]:
        """The incident as a NENA EIDO (``docs/eido.md``). The caller's phone number and
        positions are in it only when asked for: whatever leaves ShowMe for a receiver not
        configured to have them must not carry them by default."""
        from showme_core.eido import eido_for

        found = await self.incident(organisation_id, incident_id)
        document: dict[str, Any] = await self.run_cpu(  # type: ignore[attr-defined]
            functools.partial(
                eido_for,
                found,
                self.public_base(),
                include_phone=include_phone,
                include_locations=include_locations,
            )
        )
        return document

    def seal(self, data: bytes, purpose: str) -> str:
        """``data`` sealed with the service's keys for ``purpose`` (a secret a plugin must keep
        in its state, such as a webhook's signing secret): text to store, opened by
        :meth:`unseal` with the same purpose, on any instance sharing ``secret_keys``."""
        from showme_core.sealing import seal

        return seal(data, purpose, self.settings.signing_keys())

    def unseal(self, sealed: str, purpose: str) -> bytes | None:
        """What :meth:`seal` sealed, or None when the keys that sealed it are gone."""
        from showme_core.sealing import unseal

        return unseal(sealed, purpose, self.settings.signing_keys())

    async def create_invite(
        self,
        principal: Principal,
        *,
        phone: str,
        incident_id: str | None = None,
        language: str | None = None,
        send_sms: bool = True,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Create an invite as the REST API does (same checks, limits, hooks and events):
        the HTTP status and the answer (with the link, this once)."""
        from showme_core.invites import create_invite_answer

        answer = await create_invite_answer(
            self,  # type: ignore[arg-type]
            principal,
            phone=phone,
            incident_id=incident_id,
            language=language,
            send_sms=send_sms,
            idempotency_key=idempotency_key,
        )
        return answer.status, answer.body

    async def end_invite(self, principal: Principal, invite_id: str) -> dict[str, Any]:
        """End an invite of the principal's organisation, as the REST API does."""
        from showme_core.invites import end_invite, latest_sms

        ended = await end_invite(self, principal, invite_id)  # type: ignore[arg-type]
        async with self.db.read() as db:
            sms_rows = await latest_sms(db, [ended.id])
        return ended.to_json(sms_rows.get(ended.id))

    async def resend_invite(
        self, principal: Principal, invite_id: str, *, idempotency_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Send an invite's link again, as the REST API does."""
        from showme_core.invites import resend_invite_answer

        answer = await resend_invite_answer(
            self,  # type: ignore[arg-type]
            principal,
            invite_id,
            idempotency_key=idempotency_key,
        )
        return answer.status, answer.body


# The service object as plugins may use it: ShowMe's attributes ``settings`` (with
# ``settings_for(plugin)``) and ``storage``, its ``spawn(coro, name)`` for background work and
# ``public_base()``, and the methods above.
PUBLIC_SURFACE = frozenset(
    {"settings", "storage", "spawn", "public_base"}
    | {name for name in vars(ServiceSurface) if not name.startswith("_")}
)
