"""One endpoint's sender: its queue in memory, sent in order per invite, retried with backoff.

Each endpoint has its own sender task (on the instance that holds its lease), its own HTTP
client and its own queue, so an endpoint that is down or slow holds nothing but itself: not the
other endpoints, not the organisation's events (the adapter only records deliveries), not a
caller's upload or the console. Within the endpoint, deliveries go in lanes (one per invite, one
per incident's EIDO, one for the organisation's own events): a lane sends its oldest delivery and
only then the next, so an invite's events never overtake each other, while up to
``max_parallel`` lanes send at once. A failed attempt waits (exponential backoff with jitter,
or the receiver's ``Retry-After``) and blocks only its lane.

The queue is the store's (``pending:<endpoint>``): read whole when the sender starts or takes
the lease over (after a restart, a crash of another instance), then its newest entries every
``poll_seconds`` (deliveries recorded by another instance, replays from the command line);
deliveries recorded by this instance join at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from showme_cad_webhook import signing, transport
from showme_cad_webhook.addresses import AddressRefused, parse_url
from showme_cad_webhook.deliveries import Attempt, Delivery, Queued, State
from showme_cad_webhook.lease import Lease
from showme_cad_webhook.payloads import eido_body, encoded, event_body
from showme_core.errors import NotFound

if TYPE_CHECKING:
    import httpx

    from showme_cad_webhook.adapter import WebhookAdapter
    from showme_cad_webhook.endpoints import Endpoint

log = structlog.get_logger("showme.cad_webhook")

# The whole queue is read again this often (the newest entries at every poll).
FULL_SCAN_SECONDS = 60.0
NEWEST = 100
PRUNE_SECONDS = 3600.0
# 4xx answers that a later attempt may well not get.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_jitter = secrets.SystemRandom()


class Undeliverable(Exception):
    """The delivery can never be sent (its event or incident is gone): it fails at once."""


class Sender:
    """Sends one endpoint's deliveries while this instance holds its lease."""

    def __init__(self, adapter: WebhookAdapter, endpoint: Endpoint) -> None:
        self._adapter = adapter
        self._settings = adapter.settings
        self.endpoint = endpoint
        self.queue: dict[str, Queued] = {}
        self._due: dict[str, float] = {}  # monotonic time before which not to try again
        self._flying: dict[str, asyncio.Task[None]] = {}  # lane -> its attempt
        self._wake = asyncio.Event()
        self._holding = False
        self._stopping = False
        self._lease = Lease(
            adapter.showme,
            endpoint.organisation_id,
            endpoint.id,
            self._settings.lease_seconds,
            self._settings.request_timeout_seconds,
        )
        self._client: httpx.AsyncClient | None = None
        self._retired: list[httpx.AsyncClient] = []
        self._next_look = 0.0
        self._next_full_scan = 0.0
        # History goes a quarter of its keeping time late at most.
        self._prune_every = min(PRUNE_SECONDS, self._settings.keep_deliveries_seconds / 4)
        self._next_prune = time.monotonic() + self._prune_every

    def offer(self, queued: Queued) -> None:
        """A delivery this instance just recorded or replayed: send it without waiting for a
        scan."""
        if self._holding:
            if queued.delivery_id in self.queue:
                self._due.pop(queued.delivery_id, None)  # replayed while waiting: try now
            else:
                self.queue[queued.delivery_id] = queued
            self._wake.set()

    def stop(self) -> None:
        """Start no more attempts; :meth:`run` returns once those in flight are done."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Send until the endpoint is deleted or disabled, or :meth:`stop`."""
        try:
            while not self._stopping:
                try:
                    if not await self._look():
                        return
                    self._start_due()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception(
                        "webhook sender failed; it carries on", endpoint_id=self.endpoint.id
                    )
                if not self._stopping:
                    await self._sleep()
        finally:
            await self._close()

    async def _close(self) -> None:
        flying = list(self._flying.values())
        if flying:
            # Attempts in flight end within their timeout; letting them finish and record their
            # outcome spares the receiver a copy from whichever instance sends next.
            await asyncio.wait(flying, timeout=self._settings.request_timeout_seconds + 2)
        for task in flying:
            task.cancel()
        for task in flying:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._lease.release()
        for client in [*self._retired, *([self._client] if self._client else [])]:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._client = None
        self._retired.clear()

    # -- the queue -----------------------------------------------------------------------------

    async def _look(self) -> bool:
        """Every ``poll_seconds``: the endpoint's settings, the lease, the queue. False once
        the endpoint is gone or disabled."""
        now = time.monotonic()
        if now < self._next_look:
            return True
        self._next_look = now + self._settings.poll_seconds
        endpoint = await self._adapter.endpoints.find(self.endpoint.id)
        if endpoint is None or not endpoint.active:
            return False
        await self._adopt(endpoint)
        held = await self._lease.hold()
        if not held:
            self._holding = False
            self.queue.clear()
            self._due.clear()
            return True
        if not self._holding or now >= self._next_full_scan:
            self._holding = True
            self._next_full_scan = now + FULL_SCAN_SECONDS
            self._merge(await self._adapter.deliveries.queue(endpoint.id))
        else:
            newest = await self._adapter.deliveries.queue(endpoint.id, NEWEST)
            unknown = [q for q in newest if q.delivery_id not in self.queue]
            if len(newest) == NEWEST and len(unknown) == NEWEST:
                self._merge(await self._adapter.deliveries.queue(endpoint.id))
            else:
                self._merge(newest)
        if now >= self._next_prune:
            self._next_prune = now + self._prune_every
            older = self._adapter.showme.now() - timedelta(
                seconds=self._settings.keep_deliveries_seconds
            )
            await self._adapter.deliveries.prune(endpoint.id, older)
        return True

    async def _adopt(self, endpoint: Endpoint) -> None:
        """Take the endpoint as it is now."""
        if endpoint.url != self.endpoint.url and self._client is not None:
            # Pooled connections were opened (and TLS checked) for the old URL's name; attempts
            # still using them finish, and the client is closed when the sender stops.
            self._retired.append(self._client)
            self._client = None
        self.endpoint = endpoint

    def _merge(self, entries: list[Queued]) -> None:
        # Only adds: an entry recorded here while the scan read is not dropped; entries that are
        # no longer pending leave when their attempt finds so.
        for entry in entries:
            known = self.queue.get(entry.delivery_id)
            if known is None:
                self.queue[entry.delivery_id] = entry
            elif known.queued_at is None or (
                entry.queued_at is not None and entry.queued_at > known.queued_at
            ):
                if known.queued_at is not None:
                    self._due.pop(entry.delivery_id, None)  # queued anew (a replay): try now
                self.queue[entry.delivery_id] = entry

    def _drop(self, delivery_id: str) -> None:
        self.queue.pop(delivery_id, None)
        self._due.pop(delivery_id, None)

    def _heads(self) -> list[Queued]:
        """The oldest delivery of each lane, oldest lanes first."""
        heads: dict[str, Queued] = {}
        for entry in sorted(self.queue.values(), key=lambda q: q.order):
            heads.setdefault(entry.lane, entry)
        return list(heads.values())

    def _start_due(self) -> None:
        if not self._holding or not self._lease.may_send():
            if self._holding:
                self._next_look = 0.0  # renew the lease at once
            return
        now = time.monotonic()
        for head in self._heads():
            if len(self._flying) >= self._settings.max_parallel:
                break
            if head.lane in self._flying or self._due.get(head.delivery_id, 0.0) > now:
                continue
            self._flying[head.lane] = asyncio.get_running_loop().create_task(
                self._attempt(head), name=f"webhook:{self.endpoint.id}:{head.delivery_id}"
            )

    async def _sleep(self) -> None:
        now = time.monotonic()
        until = self._next_look
        if len(self._flying) < self._settings.max_parallel:
            for head in self._heads():
                if head.lane not in self._flying:
                    until = min(until, self._due.get(head.delivery_id, now))
        # asyncio.timeout rather than wait_for: on Python 3.11, wait_for returns normally when a
        # cancellation races the event being set, and the task would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, until - now)):
                await self._wake.wait()
        self._wake.clear()

    # -- one attempt ---------------------------------------------------------------------------

    async def _attempt(self, queued: Queued) -> None:
        try:
            await self._try(queued)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "webhook attempt failed unexpectedly; it will be tried again",
                endpoint_id=self.endpoint.id,
                delivery_id=queued.delivery_id,
            )
            self._due[queued.delivery_id] = time.monotonic() + self._settings.retry_first_seconds
        finally:
            self._flying.pop(queued.lane, None)
            self._wake.set()

    def _newer_push(self, queued: Queued) -> bool:
        return any(q.lane == queued.lane and q.order > queued.order for q in self.queue.values())

    async def _try(self, queued: Queued) -> None:
        deliveries = self._adapter.deliveries
        delivery = await deliveries.get(self.endpoint.id, queued.delivery_id)
        if delivery is None or delivery.state != "pending":
            await deliveries.unqueue(self.endpoint.id, queued.delivery_id)
            self._drop(queued.delivery_id)
            return
        if delivery.is_eido and self._newer_push(queued):
            # An EIDO is the whole incident: a newer push behind this one makes it pointless.
            await deliveries.attempted(delivery, None, "superseded")
            self._adapter.count("superseded")
            self._drop(queued.delivery_id)
            return
        # The endpoint as it is now: a rotated secret, a privacy setting turned off or a new URL
        # apply from the next attempt, not the next look.
        endpoint = await self._adapter.endpoints.find(self.endpoint.id)
        if endpoint is None or not endpoint.active:
            self._next_look = 0.0
            return
        await self._adopt(endpoint)
        now = self._adapter.showme.now()
        undeliverable = False
        try:
            body = await self._body(delivery)
            outcome = await self._post(delivery, body)
        except Undeliverable as exc:
            undeliverable = True
            outcome = transport.Outcome(0, error=str(exc))
        except AddressRefused as exc:
            outcome = transport.Outcome(0, error=str(exc))
        except Exception as exc:
            # The payload could not be made (the store is away, the EIDO cannot be built): the
            # attempt failed on our side, and is retried like any other.
            log.exception("webhook payload failed", endpoint_id=self.endpoint.id)
            outcome = transport.Outcome(0, error=f"ShowMe could not build it: {type(exc).__name__}")
        attempt = Attempt(
            at=now,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error,
            address=outcome.address,
        )
        state, wait, client_error = self._verdict(delivery, outcome, undeliverable)
        await deliveries.attempted(delivery, attempt, state, client_error=client_error)
        self._adapter.count(state if state != "pending" else "retry")
        if state == "pending":
            self._due[queued.delivery_id] = time.monotonic() + wait
        else:
            self._drop(queued.delivery_id)
        if not outcome.ok:
            log.warning(
                "webhook attempt failed",
                endpoint_id=self.endpoint.id,
                delivery_id=delivery.id,
                type=delivery.type,
                status_code=outcome.status_code,
                error=outcome.error,
                state=state,
                retry_in=round(wait, 2) if state == "pending" else None,
            )

    def _verdict(
        self, delivery: Delivery, outcome: transport.Outcome, undeliverable: bool
    ) -> tuple[State, float, bool]:
        """The delivery's state after this attempt, the wait before the next, and whether the
        receiver refused it in a way retrying will not change."""
        if outcome.ok:
            return "delivered", 0.0, False
        status = outcome.status_code
        client_error = status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX
        settings = self._settings
        started = delivery.round_started_at or delivery.created_at
        elapsed = (self._adapter.showme.now() - started).total_seconds()
        if (
            undeliverable
            or (client_error and delivery.client_errors + 1 >= settings.client_error_attempts)
            or elapsed >= settings.give_up_after_seconds
        ):
            return "failed", 0.0, client_error
        rounds = delivery.round_attempts + 1
        ceiling = min(settings.retry_max_seconds, settings.retry_first_seconds * 2 ** (rounds - 1))
        wait = _jitter.uniform(ceiling / 2, ceiling)
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, settings.retry_max_seconds))
        return "pending", wait, client_error

    async def _body(self, delivery: Delivery) -> bytes:
        showme = self._adapter.showme
        if delivery.is_eido and delivery.incident_id is not None:
            try:
                eido = await showme.eido(
                    delivery.organisation_id,
                    delivery.incident_id,
                    include_phone=self.endpoint.include_phone,
                    include_locations=self.endpoint.include_locations,
                )
            except NotFound as exc:
                raise Undeliverable(f"the incident is no longer known ({exc.message})") from None
            return encoded(eido_body(delivery.incident_id, delivery.event_id, eido, showme.now()))
        found = await showme.events_after(delivery.organisation_id, delivery.event_id - 1, 1)
        if not found or found[0].id != delivery.event_id:
            raise Undeliverable("the event is no longer stored")
        return encoded(event_body(found[0], self.endpoint, self._adapter.media_base()))

    async def _post(self, delivery: Delivery, body: bytes) -> transport.Outcome:
        settings = self._settings
        target = parse_url(self.endpoint.url, allow_insecure=settings.allow_insecure_loopback)
        keys = self._adapter.endpoints.keys(self.endpoint)
        if not keys:
            return transport.Outcome(
                0, error="no signing secret of the endpoint opens (were secret_keys changed?)"
            )
        now = self._adapter.showme.now()
        headers = signing.headers(keys, delivery.message_id, int(now.timestamp()), body)
        if self._client is None:
            self._client = transport.new_client(self._adapter.tls, settings.max_parallel)
        return await transport.post(
            self._client,
            target,
            self._adapter.resolve,
            allow_loopback=settings.allow_insecure_loopback,
            headers=headers,
            body=body,
            timeout=settings.request_timeout_seconds,
            now=now,
        )
