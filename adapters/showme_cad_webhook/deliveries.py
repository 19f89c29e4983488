"""Deliveries: one per (endpoint, event), recorded durably before the event is acknowledged, and
the attempts made to send it.

Each endpoint has two kinds of records: ``delivery:<endpoint>`` (every delivery with its state and
latest attempts, what admins list) and ``pending:<endpoint>`` (only those still to send: the
endpoint's queue, small however long the history grows). A delivery's id is its event's id (and
``<id>.eido`` for the EIDO pushed after that event), so recording the same event twice, as an
at-least-once consumer may, finds the first record and adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from showme_cad_webhook.const import DELIVERY, DOMAIN, EIDO_TYPE, PENDING
from showme_cad_webhook.records import every_record
from showme_cad_webhook.times import iso, parse_iso
from showme_core.errors import NotFound
from showme_core.plugin_state import RecordExists

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.events import Event
    from showme_core.plugin_state import Record

State = Literal["pending", "delivered", "failed", "superseded"]
STATES: tuple[State, ...] = ("pending", "delivered", "failed", "superseded")
# Attempts kept on a delivery for admins (the count goes on).
KEEP_ATTEMPTS = 20
MAX_REPLAY = 10_000
PRUNE_BATCH = 200


@dataclass(frozen=True)
class Attempt:
    """One try: when, the receiver's status (None when no answer came), why it failed."""

    at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    address: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "duration_ms": self.duration_ms,
            "status_code": self.status_code,
            "error": self.error,
            "address": self.address,
        }


@dataclass(frozen=True)
class Queued:
    """An entry of an endpoint's queue: enough to order it without reading the delivery."""

    delivery_id: str
    event_id: int
    # Deliveries of one lane go one at a time, oldest first: an invite's events (or one
    # incident's EIDO pushes) never overtake each other.
    lane: str
    incident_id: str | None = None  # set for an EIDO push
    # When the entry was (re)queued: a replay queues it anew, which resets its wait.
    queued_at: datetime | None = field(default=None, compare=False)

    @property
    def order(self) -> tuple[int, int]:
        return (self.event_id, 1 if self.incident_id is not None else 0)

    def to_data(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "lane": self.lane, "incident_id": self.incident_id}

    @classmethod
    def from_record(cls, record: Record) -> Queued:
        data = record.data
        return cls(
            record.id,
            int(data["event_id"]),
            data["lane"],
            data.get("incident_id"),
            queued_at=record.created_at,
        )


@dataclass(frozen=True)
class Delivery:
    """One message for one endpoint, with its state and its latest attempts."""

    id: str
    endpoint_id: str
    organisation_id: str
    event_id: int
    type: str
    invite_id: str | None
    incident_id: str | None
    message_id: str  # webhook-id: the same on every attempt and replay
    state: State
    created_at: datetime
    updated_at: datetime
    attempts: tuple[dict[str, Any], ...] = ()
    attempt_count: int = 0
    # The current round: since it was recorded or last replayed (the give-up clock).
    round_started_at: datetime | None = None
    round_attempts: int = 0
    client_errors: int = 0
    delivered_at: datetime | None = None
    replays: int = 0

    @property
    def queued(self) -> Queued:
        incident = self.incident_id if self.is_eido else None
        return Queued(self.id, self.event_id, lane_of(self), incident)

    @property
    def is_eido(self) -> bool:
        return self.type == EIDO_TYPE

    def to_data(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "type": self.type,
            "invite_id": self.invite_id,
            "incident_id": self.incident_id,
            "message_id": self.message_id,
            "state": self.state,
            "attempts": list(self.attempts),
            "attempt_count": self.attempt_count,
            "round_started_at": iso(self.round_started_at),
            "round_attempts": self.round_attempts,
            "client_errors": self.client_errors,
            "delivered_at": iso(self.delivered_at),
            "replays": self.replays,
        }

    @classmethod
    def from_record(cls, record: Record) -> Delivery:
        data = record.data

        def when(key: str) -> datetime | None:
            return parse_iso(data[key]) if data.get(key) else None

        return cls(
            id=record.id,
            endpoint_id=data["endpoint_id"],
            organisation_id=record.organisation_id or "",
            event_id=int(data["event_id"]),
            type=data["type"],
            invite_id=data.get("invite_id"),
            incident_id=data.get("incident_id"),
            message_id=data["message_id"],
            state=data["state"],
            created_at=record.created_at,
            updated_at=record.updated_at,
            attempts=tuple(data.get("attempts", [])),
            attempt_count=int(data.get("attempt_count", 0)),
            round_started_at=when("round_started_at"),
            round_attempts=int(data.get("round_attempts", 0)),
            client_errors=int(data.get("client_errors", 0)),
            delivered_at=when("delivered_at"),
            replays=int(data.get("replays", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        """The delivery as admins see it, its latest attempts first."""
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "type": self.type,
            "invite_id": self.invite_id,
            "incident_id": self.incident_id,
            "message_id": self.message_id,
            "state": self.state,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "delivered_at": iso(self.delivered_at),
            "attempt_count": self.attempt_count,
            "replays": self.replays,
            "attempts": list(reversed(self.attempts)),
        }


def lane_of(delivery: Delivery) -> str:
    if delivery.is_eido:
        return f"incident:{delivery.incident_id}"
    return f"invite:{delivery.invite_id}" if delivery.invite_id else "organisation"


class Deliveries:
    """Every endpoint's deliveries and queue, through ``showme.plugin_state``."""

    def __init__(self, showme: ShowMe) -> None:
        self._showme = showme
        self._state = showme.plugin_state(DOMAIN)

    async def record(
        self, endpoint_id: str, event: Event, *, incident_id: str | None = None
    ) -> Queued | None:
        """Record the delivery of ``event`` (of its incident's EIDO, with ``incident_id``) to the
        endpoint, with its place in the queue; None when it was recorded before."""
        delivery_id = f"{event.id}.eido" if incident_id is not None else str(event.id)
        kind = DELIVERY + endpoint_id
        now = self._showme.now()
        delivery = Delivery(
            id=delivery_id,
            endpoint_id=endpoint_id,
            organisation_id=event.organisation_id,
            event_id=event.id,
            type=EIDO_TYPE if incident_id is not None else event.type,
            invite_id=event.invite_id,
            incident_id=incident_id,
            message_id=f"msg_{endpoint_id}_{delivery_id}",
            state="pending",
            created_at=now,
            updated_at=now,
            round_started_at=now,
        )
        try:
            async with self._state.transaction() as conn:
                await self._state.add(
                    kind,
                    delivery.to_data(),
                    organisation_id=event.organisation_id,
                    id=delivery_id,
                    conn=conn,
                )
                await self._state.add(
                    PENDING + endpoint_id,
                    delivery.queued.to_data(),
                    organisation_id=event.organisation_id,
                    id=delivery_id,
                    conn=conn,
                )
        except RecordExists:
            # Recorded before (the event came again): the first record stands, and this
            # transaction, with its queue entry, is rolled back.
            return None
        return delivery.queued

    async def get(self, endpoint_id: str, delivery_id: str) -> Delivery | None:
        record = await self._state.get(DELIVERY + endpoint_id, delivery_id)
        return Delivery.from_record(record) if record else None

    async def recent(
        self,
        endpoint_id: str,
        *,
        limit: int = 50,
        before: datetime | None = None,
        state: State | None = None,
    ) -> list[Delivery]:
        """The endpoint's deliveries, newest first (of one state, when given)."""
        found: list[Delivery] = []
        async for record in every_record(self._state, DELIVERY + endpoint_id, before=before):
            delivery = Delivery.from_record(record)
            if state is None or delivery.state == state:
                found.append(delivery)
                if len(found) >= limit:
                    break
        return found

    async def queue(self, endpoint_id: str, newest: int | None = None) -> list[Queued]:
        """The endpoint's queue (only its ``newest`` entries, when given)."""
        kind = PENDING + endpoint_id
        if newest is not None:
            return [Queued.from_record(r) for r in await self._state.list(kind, limit=newest)]
        return [Queued.from_record(record) async for record in every_record(self._state, kind)]

    async def unqueue(self, endpoint_id: str, delivery_id: str) -> None:
        """Drop a queue entry whose delivery is no longer pending (or no longer exists)."""
        await self._state.delete(PENDING + endpoint_id, delivery_id)

    async def attempted(
        self,
        delivery: Delivery,
        attempt: Attempt | None,
        state: State,
        *,
        client_error: bool = False,
    ) -> Delivery:
        """Write an attempt's outcome: still ``pending`` (to retry), or done (``delivered``,
        ``failed``, ``superseded``), which also takes it off the queue, in one transaction."""
        attempts = delivery.attempts
        if attempt is not None:
            attempts = (*attempts, attempt.to_data())[-KEEP_ATTEMPTS:]
        done = replace(
            delivery,
            state=state,
            attempts=attempts,
            attempt_count=delivery.attempt_count + (attempt is not None),
            round_attempts=delivery.round_attempts + (attempt is not None),
            client_errors=delivery.client_errors + client_error,
            delivered_at=attempt.at if state == "delivered" and attempt else delivery.delivered_at,
            updated_at=self._showme.now(),
        )
        kind = DELIVERY + delivery.endpoint_id
        async with self._state.transaction() as conn:
            current = await self._state.get(kind, delivery.id, for_update=True, conn=conn)
            if current is None or Delivery.from_record(current).replays != delivery.replays:
                # Deleted, or replayed while this attempt ran: the replay's round stands.
                return done
            await self._state.update(kind, delivery.id, done.to_data(), conn=conn)
            if state != "pending":
                await self._state.delete(PENDING + delivery.endpoint_id, delivery.id, conn=conn)
        return done

    async def replay(self, endpoint_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now, whatever its state, with a fresh round of attempts and the
        same ``webhook-id`` (a receiver that kept it may drop the copy)."""
        kind = DELIVERY + endpoint_id
        now = self._showme.now()
        async with self._state.transaction() as conn:
            record = await self._state.get(kind, delivery_id, for_update=True, conn=conn)
            if record is None:
                raise NotFound("No such delivery.", code="delivery_not_found")
            delivery = Delivery.from_record(record)
            again = replace(
                delivery,
                state="pending",
                round_started_at=now,
                round_attempts=0,
                client_errors=0,
                replays=delivery.replays + 1,
                updated_at=now,
            )
            await self._state.update(kind, delivery_id, again.to_data(), conn=conn)
            pending = PENDING + endpoint_id
            if await self._state.get(pending, delivery_id, conn=conn) is not None:
                # Still queued: a fresh entry (newest) lets every instance's scan see the replay.
                await self._state.delete(pending, delivery_id, conn=conn)
            await self._state.add(
                pending,
                again.queued.to_data(),
                organisation_id=again.organisation_id,
                id=delivery_id,
                conn=conn,
            )
        return again

    async def replay_since(self, endpoint_id: str, since: datetime) -> list[Delivery]:
        """Replay every delivery recorded at or after ``since`` (at most ``MAX_REPLAY``)."""
        ids = [
            record.id
            async for record in every_record(self._state, DELIVERY + endpoint_id, not_before=since)
        ][:MAX_REPLAY]
        # Oldest first, so that the queue's scan meets them in their order.
        return [await self.replay(endpoint_id, delivery_id) for delivery_id in reversed(ids)]

    async def prune(self, endpoint_id: str, older_than: datetime) -> int:
        """Remove delivered, failed and superseded deliveries recorded before ``older_than``."""
        kind = DELIVERY + endpoint_id
        removed = 0
        while True:
            batch = await self._state.list(kind, limit=PRUNE_BATCH, before=older_than)
            done = [record for record in batch if record.data.get("state") != "pending"]
            # One short transaction per batch, so the store's writers take turns.
            async with self._state.transaction() as conn:
                for record in done:
                    await self._state.delete(kind, record.id, conn=conn)
            removed += len(done)
            if len(batch) < PRUNE_BATCH or not done:
                return removed


def parse_state(value: str | None) -> State | None:
    """A ``state`` filter from a query or a command line."""
    if value is None or value == "":
        return None
    for state in STATES:
        if value == state:
            return state
    raise ValueError(f"state must be one of {', '.join(STATES)}")
