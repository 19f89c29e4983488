"""Sliding-window rate limits: refusals take nothing, and keys that come and go are forgotten."""

from __future__ import annotations

import pytest

from showme_core.errors import TooBusy
from showme_core.ratelimit import PRUNE_EVERY, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_refuses_then_frees() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    check = [("k", [(2, 60.0)], "invites", "you")]
    for _ in range(2):
        with limiter.reserve(check):
            pass
    with (
        pytest.raises(TooBusy, match="Too many invites sent by you") as refused,
        limiter.reserve(check),
    ):
        pass
    assert refused.value.retry_after == 61
    clock.now += 61
    with limiter.reserve(check):
        pass


def test_keys_of_invites_long_gone_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    for n in range(PRUNE_EVERY - 1):
        with limiter.reserve([(f"ice:{n}", [(10, 60.0)], "ICE calls", "this invite")]):
            pass
    assert len(limiter) == PRUNE_EVERY - 1
    clock.now += 61
    with limiter.reserve([("ice:new", [(10, 60.0)], "ICE calls", "this invite")]):
        pass
    assert len(limiter) == 1
