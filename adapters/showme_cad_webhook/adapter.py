"""The adapter: a durable event consumer that records deliveries, and the senders that send them.

``deliver(event)`` is called by the core for each organisation's events in commit order, at least
once, and the organisation's next event waits for it; so it only records, durably, one delivery
per endpoint that wants the event (and, for endpoints that take the EIDO, one push of the
incident's EIDO), hands each to its endpoint's sender and returns. Sending happens elsewhere
(``sender.py``), one task per endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter

from showme_cad_webhook.addresses import Resolver, system_resolver
from showme_cad_webhook.const import DOMAIN, INCIDENT_OF, NAME
from showme_cad_webhook.deliveries import Deliveries
from showme_cad_webhook.endpoints import Endpoint, Endpoints
from showme_cad_webhook.sender import Sender
from showme_cad_webhook.transport import tls_context
from showme_core.plugin_state import RecordExists

if TYPE_CHECKING:
    from showme_cad_webhook.config import WebhookSettings
    from showme_cad_webhook.deliveries import Queued
    from showme_core.app import ShowMe
    from showme_core.config import Settings
    from showme_core.events import Event

log = structlog.get_logger("showme.cad_webhook")

MAINTENANCE_SECONDS = 3600.0
# An endpoint's creation time is taken just before it commits; an organisation seen without
# endpoints is trusted for events this much older than the look, so none made meanwhile is missed.
COMMIT_MARGIN = timedelta(seconds=5)


class NotStarted(RuntimeError):
    """The adapter was used before the service started it."""


class WebhookAdapter:
    """Signed webhooks to each organisation's endpoints (a CAD adapter)."""

    name = NAME
    # From an organisation's first event: an endpoint must not miss the first events of an
    # organisation whose lane starts after them; older events meet no endpoint (only what
    # happens after an endpoint is made goes to it), and cost one look per organisation.
    start = "earliest"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        # Tests replace it to make a name resolve where they need.
        self.resolver: Resolver = system_resolver
        self.tls = tls_context(settings.ca_file)
        self._showme: ShowMe | None = None
        self._senders: dict[str, Sender] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._attempts: Counter | None = None
        self._without_endpoints: dict[str, datetime] = {}  # organisation -> when seen so

    # -- wiring --------------------------------------------------------------------------------

    def bind(self, showme: ShowMe) -> None:
        """Attach the service (its store and keys); the routes and the command line need no
        more than this, the senders start with :meth:`start_sending`."""
        if self._showme is showme:
            return
        self._showme = showme
        self.endpoints = Endpoints(showme, self.settings, self.resolve)
        self.deliveries = Deliveries(showme)

    @property
    def showme(self) -> ShowMe:
        if self._showme is None:
            raise NotStarted("the cad_webhook adapter is not attached to a service")
        return self._showme

    async def resolve(self, host: str, port: int) -> list[str]:
        return await self.resolver(host, port)

    def media_base(self) -> str:
        """Where a CAD fetches media: ``public_url`` (relative URLs without it)."""
        try:
            return self.showme.public_base()
        except Exception:
            return ""

    def count(self, outcome: str) -> None:
        if self._attempts is not None:
            self._attempts.labels(outcome).inc()

    async def start_sending(self, showme: ShowMe) -> None:
        self.bind(showme)
        if self.settings.allow_insecure_loopback:
            log.warning(
                "cad_webhook allows http:// and loopback endpoints: a setting for tests only"
            )
        if self._attempts is None:  # once per service, however often it starts
            self._attempts = Counter(
                "showme_cad_webhook_attempts",
                "Webhook attempts by what they came to: delivered, retry (failed, will be "
                "tried again), failed (given up, replayable), superseded (a newer EIDO push "
                "replaced it).",
                ["outcome"],
                registry=showme.metrics_registry,
            )
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name="cad-webhook-senders"
        )

    async def stop_sending(self) -> None:
        """Stop the senders once their attempts in flight are done (each within its timeout),
        and let their leases go."""
        supervisor, self._supervisor = self._supervisor, None  # no new senders from here
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        for sender in self._senders.values():
            sender.stop()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.request_timeout_seconds + 5)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._supervisor = None
        self._tasks.clear()
        self._senders.clear()

    async def _supervise(self) -> None:
        """A sender for every active endpoint, started as endpoints appear (from any instance
        or the command line)."""
        next_maintenance = 0.0
        every = min(MAINTENANCE_SECONDS, self.settings.keep_deliveries_seconds / 4)
        loop = asyncio.get_running_loop()
        while True:
            try:
                for endpoint in await self.endpoints.every():
                    if endpoint.active:
                        self.ensure_sender(endpoint)
                if loop.time() >= next_maintenance:
                    next_maintenance = loop.time() + every
                    await self._forget_old_incidents()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook senders: cannot list endpoints; trying again")
            await asyncio.sleep(self.settings.poll_seconds)

    def ensure_sender(self, endpoint: Endpoint) -> Sender | None:
        """The endpoint's sender in this instance, started if it is not running (only once the
        adapter runs: the command line records, the service sends)."""
        if self._supervisor is None:
            return None
        task = self._tasks.get(endpoint.id)
        if task is None or task.done():
            sender = Sender(self, endpoint)
            self._senders[endpoint.id] = sender
            self._tasks[endpoint.id] = asyncio.get_running_loop().create_task(
                sender.run(), name=f"cad-webhook:{endpoint.id}"
            )
        return self._senders[endpoint.id]

    def offer(self, endpoint: Endpoint, queued: Queued) -> None:
        sender = self.ensure_sender(endpoint)
        if sender is not None:
            sender.offer(queued)

    # -- the consumer --------------------------------------------------------------------------

    async def deliver(self, event: Event) -> None:
        """Record this event's deliveries (idempotent: an event may come twice) and return."""
        seen_empty = self._without_endpoints.get(event.organisation_id)
        if seen_empty is not None and event.created_at < seen_empty - COMMIT_MARGIN:
            return  # an old event (a lane catching up): no endpoint can want it
        looked = self.showme.now()
        every = await self.endpoints.every(event.organisation_id)
        if every:
            self._without_endpoints.pop(event.organisation_id, None)
        else:
            self._without_endpoints[event.organisation_id] = looked
        endpoints = [
            endpoint
            for endpoint in every
            # An endpoint gets what happens after it was made, even if the lane is behind.
            if endpoint.active and endpoint.created_at <= event.created_at
        ]
        if not endpoints:
            return
        for endpoint in endpoints:
            if endpoint.wants(event.type):
                queued = await self.deliveries.record(endpoint.id, event)
                if queued is not None:
                    self.offer(endpoint, queued)
        pushes = [endpoint for endpoint in endpoints if endpoint.push_eido]
        if pushes and event.invite_id is not None:
            incident_id = await self._incident_of(event)
            if incident_id is not None:
                for endpoint in pushes:
                    queued = await self.deliveries.record(
                        endpoint.id, event, incident_id=incident_id
                    )
                    if queued is not None:
                        self.offer(endpoint, queued)

    async def _incident_of(self, event: Event) -> str | None:
        """The CAD incident an event belongs to: named in invite and media payloads, and
        remembered per invite for the events that do not name it (SMS, streams)."""
        state = self.showme.plugin_state(DOMAIN)
        for key in ("invite", "media"):
            part: Any = event.data.get(key)
            if isinstance(part, dict) and part.get("incident_id"):
                incident_id = str(part["incident_id"])
                if key == "invite" and event.invite_id is not None:
                    await self._remember(event.organisation_id, event.invite_id, incident_id)
                return incident_id
        if event.invite_id is None:
            return None
        record = await state.get(INCIDENT_OF, event.invite_id)
        return str(record.data["incident_id"]) if record is not None else None

    async def _remember(self, organisation_id: str, invite_id: str, incident_id: str) -> None:
        state = self.showme.plugin_state(DOMAIN)
        if await state.get(INCIDENT_OF, invite_id) is not None:
            return
        with contextlib.suppress(RecordExists):
            await state.add(
                INCIDENT_OF,
                {"incident_id": incident_id},
                organisation_id=organisation_id,
                id=invite_id,
            )

    async def _forget_old_incidents(self) -> None:
        """Invites' incidents are remembered as long as deliveries are kept."""
        state = self.showme.plugin_state(DOMAIN)
        older = self.showme.now() - timedelta(seconds=self.settings.keep_deliveries_seconds)
        while old := await state.list(INCIDENT_OF, before=older, limit=200):
            async with state.transaction() as conn:
                for record in old:
                    await state.delete(INCIDENT_OF, record.id, conn=conn)

    async def check(self) -> str:
        """``showme check``: refuse the test-only setting in a real deployment."""
        if self.settings.allow_insecure_loopback:
            raise RuntimeError(
                "allow_insecure_loopback is on: webhooks may go over plain http and to this "
                "machine; it is a setting for tests only"
            )
        return (
            f"retries for {self.settings.give_up_after_seconds / 3600:g} h, "
            f"{self.settings.request_timeout_seconds:g} s per attempt"
        )


# One adapter per service object, found again from the settings the hooks are given (the
# registration hook sees the settings, the others the service that holds them).
_ADAPTERS: dict[int, tuple[weakref.ref[Settings], WebhookAdapter]] = {}


def adapter_for(config: Settings) -> WebhookAdapter:
    """The adapter of the service built with ``config`` (made on first use)."""
    from showme_cad_webhook.config import WebhookSettings

    for key, (ref, _adapter) in list(_ADAPTERS.items()):
        if ref() is None:
            del _ADAPTERS[key]
    found = _ADAPTERS.get(id(config))
    if found is not None and found[0]() is config:
        return found[1]
    adapter = WebhookAdapter(WebhookSettings.from_options(config.settings_for(DOMAIN)))
    _ADAPTERS[id(config)] = (weakref.ref(config), adapter)
    return adapter


def adapter_of(showme: ShowMe) -> WebhookAdapter:
    """The adapter of ``showme``, attached to it."""
    adapter = adapter_for(showme.settings)
    adapter.bind(showme)
    return adapter
