"""Sliding-window rate limits kept in the instance's memory (abuse control for invites and SMS).

Each key (a dispatcher, an API key, an organisation) has its own windows, e.g. 10 per minute and
60 per hour. A slot is reserved before the work and released if the work is refused for another
reason, so a refused request does not use up the limit. Across several instances each keeps its
own count (a Redis plugin would share them).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from showme_core.errors import TooBusy

PRUNE_EVERY = 1024


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._longest = 0.0  # the longest window asked for: older hits count for nothing
        self._calls = 0

    @contextmanager
    def reserve(
        self, checks: Sequence[tuple[str, Sequence[tuple[int, float]], str, str]]
    ) -> Iterator[None]:
        """Take one slot under every ``(key, [(count, seconds), ...], what, who)`` or raise
        :class:`TooBusy` saying too many ``what`` by ``who`` and when to retry; the slots are
        given back if the block raises."""
        now = self._clock()
        self._calls += 1
        if self._calls % PRUNE_EVERY == 0:
            self._prune(now)
        for key, limits, what, who in checks:
            hits = self._hits.get(key, deque())
            longest = max((seconds for _count, seconds in limits), default=0)
            self._longest = max(self._longest, longest)
            while hits and hits[0] <= now - longest:
                hits.popleft()
            for count, seconds in limits:
                recent = [t for t in hits if t > now - seconds]
                if len(recent) >= count:
                    retry = max(1, int(recent[-count] + seconds - now) + 1)
                    error = TooBusy(
                        f"Too many {what} sent by {who} ({count} per "
                        f"{_span(seconds)}); try again in {retry} s.",
                        code="rate_limited",
                    )
                    error.retry_after = retry
                    raise error
        taken: list[tuple[str, float]] = []
        for key, _limits, _what, _who in checks:
            self._hits.setdefault(key, deque()).append(now)
            taken.append((key, now))
        try:
            yield
        except BaseException:
            for key, at in taken:
                kept = self._hits.get(key)
                if kept and at in kept:
                    kept.remove(at)
            raise

    def _prune(self, now: float) -> None:
        """Forget keys whose last hit is older than any window (keys come and go with invites)."""
        for key in [
            k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self._longest
        ]:
            del self._hits[key]

    def __len__(self) -> int:
        return len(self._hits)


def _span(seconds: float) -> str:
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds:g} s"
