"""Which instance sends for an endpoint: a lease in the store, so that behind several instances
an endpoint gets each delivery once and in order, and a crashed instance's endpoints move on.

The lease is a chain of records ``lease:<endpoint>`` numbered 1, 2, 3... Taking it over means
adding the next number, which only one instance can do (the id is unique); the holder renews its
own record's ``until`` long before it lapses, and sends only while its lease has more than an
attempt's length left, so an instance that took over after ``until`` never overlaps with it.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from showme_cad_webhook.const import DOMAIN, LEASE
from showme_cad_webhook.times import iso, parse_iso
from showme_core.plugin_state import RecordExists

if TYPE_CHECKING:
    from showme_core.app import ShowMe

# Each process is one holder, whatever its endpoints.
INSTANCE = secrets.token_hex(8)
# Clocks of instances differ a little; a lease is renewed (and given up) this much early.
SKEW_SECONDS = 1.0


class Lease:
    """This instance's claim to send for one endpoint."""

    def __init__(
        self,
        showme: ShowMe,
        organisation_id: str,
        endpoint_id: str,
        seconds: float,
        attempt_seconds: float,
    ) -> None:
        self._showme = showme
        self._state = showme.plugin_state(DOMAIN)
        self._organisation_id = organisation_id
        self._kind = LEASE + endpoint_id
        self._seconds = seconds
        self._attempt_seconds = attempt_seconds
        self._held: str | None = None  # the record id of our link in the chain
        self._until = 0.0  # monotonic time our lease lapses (by our clock)

    def may_send(self) -> bool:
        """Whether an attempt started now ends while the lease is surely still ours."""
        remaining = self._until - time.monotonic()
        return self._held is not None and remaining > self._attempt_seconds + SKEW_SECONDS

    async def hold(self) -> bool:
        """Take the lease, renew it when half of it is gone, or learn that another has it."""
        renew_at = max(self._seconds / 2, self._attempt_seconds + 2 * SKEW_SECONDS)
        if self._held is not None and self._until - time.monotonic() > renew_at:
            return True
        now = self._showme.now()
        started = time.monotonic()
        chain = await self._state.list(self._kind, limit=20)
        latest = max(chain, key=lambda record: int(record.id), default=None)
        until = now + timedelta(seconds=self._seconds)
        data = {"owner": INSTANCE, "until": iso(until)}
        if latest is not None and latest.id == self._held and self._until > started + SKEW_SECONDS:
            # Still ours and not lapsed: nobody can have taken it, so renewing is safe.
            await self._state.update(self._kind, latest.id, data)
            self._until = started + self._seconds
            return True
        self._held = None
        if latest is not None and parse_iso(latest.data["until"]) > now:
            return False  # another instance holds it (or ours lapsed and must be taken anew)
        number = int(latest.id) + 1 if latest is not None else 1
        try:
            await self._state.add(
                self._kind, data, organisation_id=self._organisation_id, id=f"{number:012d}"
            )
        except RecordExists:
            return False  # another instance took it first
        self._held = f"{number:012d}"
        self._until = started + self._seconds
        for record in chain:  # the links before ours are history
            await self._state.delete(self._kind, record.id)
        return True

    async def release(self) -> None:
        """Let another instance take over at once (a clean stop)."""
        if self._held is None:
            return
        lapsed: datetime = self._showme.now() - timedelta(seconds=1)
        await self._state.update(self._kind, self._held, {"owner": INSTANCE, "until": iso(lapsed)})
        self._held = None
        self._until = 0.0
