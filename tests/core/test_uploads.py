"""Upload admission and the decoding budget: bounded, and fair between organisations."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from showme_core.config import Settings
from showme_core.errors import TooBusy
from showme_core.imaging import process_picture
from showme_core.testing import Tenant, client_for
from showme_core.uploads import PixelBudget, UploadGate
from tests import pictures


def test_the_gate_bounds_each_phone_each_organisation_and_the_instance() -> None:
    gate = UploadGate(per_invite=2, per_organisation=3, total=5)
    with contextlib.ExitStack() as held:
        held.enter_context(gate.admit("north", "n1"))
        held.enter_context(gate.admit("north", "n1"))
        with pytest.raises(TooBusy, match="this phone"):
            held.enter_context(gate.admit("north", "n1"))
        held.enter_context(gate.admit("north", "n2"))
        with pytest.raises(TooBusy, match="Your emergency service"):
            held.enter_context(gate.admit("north", "n3"))
        # North is at its share; south is not touched by it.
        held.enter_context(gate.admit("south", "s1"))
        held.enter_context(gate.admit("south", "s2"))
        with pytest.raises(TooBusy, match="The service"):
            held.enter_context(gate.admit("west", "w1"))
        assert gate.in_flight() == 5 and gate.in_flight("north") == 3
    assert gate.in_flight() == 0 and gate.in_flight("north") == 0
    with gate.admit("west", "w1"):
        pass


def test_a_refused_admission_takes_nothing() -> None:
    gate = UploadGate(per_invite=1, per_organisation=1, total=1)
    with gate.admit("north", "n1"):
        for _ in range(10):
            with pytest.raises(TooBusy), gate.admit("north", "n1"):
                pass
    assert gate.in_flight() == 0


async def test_the_budget_waits_for_room_and_grants_in_fair_order() -> None:
    """Alone, the attacker may use it all; once another organisation waits, that one goes
    first as soon as there is room, ahead of the attacker's queue."""
    budget = PixelBudget(total=100)
    order: list[str] = []
    release = {name: asyncio.Event() for name in ("a1", "a2", "a3", "b1")}

    async def decode(name: str, org: str, pixels: int) -> None:
        async with budget.hold(org, pixels):
            order.append(name)
            await release[name].wait()

    attacker = [asyncio.create_task(decode(name, "attacker", 50)) for name in ("a1", "a2", "a3")]
    await _until(lambda: order == ["a1", "a2"])
    assert budget.used == 100
    victim = asyncio.create_task(decode("b1", "victim", 30))
    await asyncio.sleep(0.01)
    assert order == ["a1", "a2"]  # no room yet
    release["a1"].set()
    await _until(lambda: len(order) == 3)
    assert order[2] == "b1"  # ahead of the attacker's third, which arrived first
    release["b1"].set()
    release["a2"].set()
    await _until(lambda: len(order) == 4)
    release["a3"].set()
    await asyncio.gather(victim, *attacker)
    assert budget.used == 0


async def test_a_picture_larger_than_the_budget_waits_for_all_of_it() -> None:
    budget = PixelBudget(total=100)
    small = budget.hold("north", 10)
    await small.__aenter__()
    big = asyncio.create_task(_hold_once(budget, "south", 400))
    await asyncio.sleep(0.01)
    assert not big.done()
    await small.__aexit__(None, None, None)
    await asyncio.wait_for(big, 1)
    assert budget.used == 0


async def test_waiting_too_long_is_a_429_and_leaves_nothing_behind() -> None:
    budget = PixelBudget(total=100, wait_seconds=0.05)
    async with budget.hold("north", 100):
        with pytest.raises(TooBusy):
            async with budget.hold("south", 10):
                pass
        cancelled = asyncio.create_task(_hold_once(budget, "west", 10))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
    assert budget.used == 0
    async with budget.hold("south", 100):
        assert budget.used == 100


async def _hold_once(budget: PixelBudget, org: str, pixels: int) -> None:
    async with budget.hold(org, pixels):
        pass


async def _until(condition: object, timeout: float = 2.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)


class TestTheUploadPathKeepsToTheBudget:
    @pytest.fixture
    def showme_settings(self, showme_settings: Settings) -> Settings:
        return showme_settings.model_copy(update={"max_decoding_pixels": 3_000_000})

    async def test_pictures_decode_within_the_budget(
        self, tenant: Tenant, showme: Any, showme_app: Any
    ) -> None:
        """Four 2 MP pictures at once under a 3 MP budget: decoded one at a time, all stored;
        a WebP counts twice its pixels."""
        seen: list[int] = []
        run_cpu = showme.run_cpu

        async def watching(func: Any, *args: Any, **kwargs: Any) -> Any:
            if func is process_picture:
                seen.append(showme.decoding.used)
            return await run_cpu(func, *args, **kwargs)

        showme.run_cpu = watching
        created = await tenant.cad.post(
            "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
        )
        token = created.json()["link"].split("#", 1)[1]
        shots = [
            pictures.jpeg(pictures.scene(1600, 1250)),
            pictures.png(pictures.scene(1600, 1250)),
            pictures.webp(pictures.scene(1000, 1000)),
            pictures.jpeg(pictures.scene(1250, 1600)),
        ]

        async def send(data: bytes) -> int:
            async with client_for(showme_app) as phone:
                answer = await phone.post(
                    "/api/v1/caller/media",
                    headers={"X-ShowMe-Link": token},
                    files={"picture": ("p", data, "application/octet-stream")},
                )
                return answer.status_code

        statuses = await asyncio.gather(*(send(data) for data in shots[:2]))
        statuses += await asyncio.gather(*(send(data) for data in shots[2:]))
        assert statuses == [201] * 4
        assert seen and max(seen) <= 3_000_000
        assert 2_000_000 in seen  # one picture's reservation (a 1 MP WebP counts 2 MP)
        assert showme.decoding.used == 0


async def test_alone_an_organisation_uses_the_whole_budget() -> None:
    budget = PixelBudget(total=64, wait_seconds=0.5)
    async with budget.hold("north", 20), budget.hold("north", 20), budget.hold("north", 20):
        assert budget.used == 60


async def test_an_organisation_at_its_share_does_not_block_another() -> None:
    """A holds 20 and waits for 60 more, which needs room; B holds 30 and asks 10. A would be
    over its half while B waits, so it is passed over: B's 10 goes now, A's 60 when there is
    room."""
    budget = PixelBudget(total=100)
    order: list[str] = []
    a_holds, b_holds = budget.hold("a", 20), budget.hold("b", 30)
    await a_holds.__aenter__()
    await b_holds.__aenter__()
    a_more = asyncio.create_task(_hold_named(budget, "a", 60, order))
    await asyncio.sleep(0.01)
    b_more = asyncio.create_task(_hold_named(budget, "b", 10, order))
    await _until(lambda: "b" in order)
    assert order == ["b"]
    await b_holds.__aexit__(None, None, None)
    await asyncio.gather(b_more)
    await _until(lambda: "a" in order)
    await a_holds.__aexit__(None, None, None)
    await asyncio.gather(a_more)
    assert order == ["b", "a"] and budget.used == 0


async def _hold_named(budget: PixelBudget, org: str, pixels: int, order: list[str]) -> None:
    async with budget.hold(org, pixels):
        order.append(org)
