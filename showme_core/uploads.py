"""Who may upload now, and how many pixels may be decoded at once (``docs/media.md``).

Two bounds, both per instance and both fair between organisations, so that one PSAP (or someone
holding one PSAP's API key) cannot take the service from the others:

- :class:`UploadGate`: uploads being received or decoded at once, per phone (invite), per
  organisation and in all. Beyond them the answer is ``429`` with ``Retry-After``: the phone
  waits, not this process. A slot is held only while the body keeps arriving at the pace
  :mod:`showme_core.web.limits` enforces.
- :class:`PixelBudget`: pixels being decoded at once. Memory while decoding follows pixels, not
  requests (a few kilobytes of header can ask for 50 MP), so decoding waits for room in the
  budget. Alone, an organisation may use all of it; while another waits, at most half, and
  waiting organisations that decode less are served first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from showme_core.errors import TooBusy


class UploadGate:
    """Uploads in progress per invite, per organisation and in all."""

    def __init__(self, per_invite: int, per_organisation: int, total: int) -> None:
        self.per_invite = per_invite
        self.per_organisation = per_organisation
        self.total = total
        self._by_invite: dict[str, int] = {}
        self._by_organisation: dict[str, int] = {}
        self._in_flight = 0

    @contextlib.contextmanager
    def admit(self, organisation_id: str, invite_id: str) -> Iterator[None]:
        if self._by_invite.get(invite_id, 0) >= self.per_invite:
            raise TooBusy(
                "Another picture from this phone is still being received; send this one after it.",
                code="too_many_uploads",
            )
        if self._by_organisation.get(organisation_id, 0) >= self.per_organisation:
            raise TooBusy(
                "Your emergency service is receiving many pictures right now; this one will be "
                "retried.",
                code="too_many_uploads",
            )
        if self._in_flight >= self.total:
            raise TooBusy(
                "The service is receiving many pictures right now; this one will be retried.",
                code="too_many_uploads",
            )
        _add(self._by_invite, invite_id, 1)
        _add(self._by_organisation, organisation_id, 1)
        self._in_flight += 1
        try:
            yield
        finally:
            _add(self._by_invite, invite_id, -1)
            _add(self._by_organisation, organisation_id, -1)
            self._in_flight -= 1

    def in_flight(self, organisation_id: str | None = None) -> int:
        if organisation_id is None:
            return self._in_flight
        return self._by_organisation.get(organisation_id, 0)


def _add(counts: dict[str, int], key: str, delta: int) -> None:
    left = counts.get(key, 0) + delta
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


@dataclass(eq=False)
class _Waiter:
    organisation_id: str
    pixels: int
    granted: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class PixelBudget:
    """Pixels being decoded at once in this instance, shared fairly between organisations."""

    def __init__(self, total: int, wait_seconds: float = 30.0) -> None:
        self.total = total
        # One organisation's share while others wait; a single picture always fits its own.
        self.per_organisation = max(1, total // 2)
        self.wait_seconds = wait_seconds
        self._used = 0
        self._by_organisation: dict[str, int] = {}
        self._waiting: list[_Waiter] = []

    @property
    def used(self) -> int:
        return self._used

    @contextlib.asynccontextmanager
    async def hold(self, organisation_id: str, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` of the budget while decoding; wait (at most ``wait_seconds``) for
        room, or refuse with ``429``."""
        pixels = max(1, min(pixels, self.total))  # bigger than the budget: it waits for all of it
        waiter = _Waiter(organisation_id, pixels)
        self._waiting.append(waiter)
        self._grant()
        try:
            await asyncio.wait_for(asyncio.shield(waiter.granted), self.wait_seconds)
        except BaseException as exc:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._release(waiter)  # granted at the very moment it gave up
            else:
                waiter.granted.cancel()
                self._waiting.remove(waiter)
                self._grant()
            if isinstance(exc, TimeoutError):
                raise TooBusy(
                    "The service is decoding many pictures right now; this one will be retried.",
                    code="too_many_uploads",
                ) from None
            raise
        try:
            yield
        finally:
            self._release(waiter)

    def _capped(self, waiter: _Waiter) -> bool:
        """Whether ``waiter``'s organisation already has its share while another one waits."""
        held = self._by_organisation.get(waiter.organisation_id, 0)
        if held == 0 or held + waiter.pixels <= self.per_organisation:
            return False
        return any(other.organisation_id != waiter.organisation_id for other in self._waiting)

    def _grant(self) -> None:
        """Serve waiters in order of what their organisation already decodes, then of arrival.
        One whose organisation has its share while another waits is passed over; one that needs
        more room than is free stops the line, so a large picture is never overtaken for ever."""
        while self._waiting:
            order = sorted(
                enumerate(self._waiting),
                key=lambda pair: (self._by_organisation.get(pair[1].organisation_id, 0), pair[0]),
            )
            chosen = None
            for _index, waiter in order:
                if self._capped(waiter):
                    continue
                if self._used + waiter.pixels > self.total:
                    return
                chosen = waiter
                break
            if chosen is None:
                return
            self._waiting.remove(chosen)
            self._used += chosen.pixels
            _add(self._by_organisation, chosen.organisation_id, chosen.pixels)
            chosen.granted.set_result(None)

    def _release(self, waiter: _Waiter) -> None:
        self._used -= waiter.pixels
        _add(self._by_organisation, waiter.organisation_id, -waiter.pixels)
        self._grant()
