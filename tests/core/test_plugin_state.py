"""What a plugin keeps in the store (``showme.plugin_state``): its own records, by kind and id,
per organisation, apart from every other plugin's (docs/plugins.md, "The service object")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from showme_core.plugin_state import RecordExists
from showme_core.testing import Tenant


async def test_records_live_and_die_by_kind_and_id(showme: Any, tenant: Tenant) -> None:
    state = showme.plugin_state("board")
    first = await state.add("note", {"text": "ambulance sent", "n": [1, 2]}, id="n-1")
    assert first.id == "n-1" and first.organisation_id is None
    assert (await state.get("note", "n-1")).data == {"text": "ambulance sent", "n": [1, 2]}
    assert await state.get("other-kind", "n-1") is None
    with pytest.raises(RecordExists):
        await state.add("note", {}, id="n-1")
    assert await state.update("note", "n-1", {"text": "arrived"})
    assert (await state.get("note", "n-1")).data == {"text": "arrived"}
    assert not await state.update("note", "n-404", {})
    assert await state.delete("note", "n-1")
    assert not await state.delete("note", "n-1")
    # Another plugin's records of the same kind and id are its own.
    await showme.plugin_state("other").add("note", {"text": "mine"}, id="n-2")
    assert await state.get("note", "n-2") is None


async def test_a_taken_id_does_not_spoil_the_plugins_transaction(
    showme: Any, tenant: Tenant
) -> None:
    state = showme.plugin_state("board")
    await state.add("slot", {}, id="s-1", organisation_id=tenant.org.id)
    async with state.transaction() as conn:
        with pytest.raises(RecordExists):
            await state.add("slot", {}, id="s-1", conn=conn)
        await state.add("slot", {"then": True}, id="s-2", organisation_id=tenant.org.id, conn=conn)
    assert (await state.get("slot", "s-2")).data == {"then": True}


async def test_one_organisations_records_are_not_anothers(showme: Any, make_tenant: Any) -> None:
    north, south = await make_tenant(), await make_tenant()
    state = showme.plugin_state("board")
    made = [await state.add("endpoint", {"n": n}, organisation_id=north.org.id) for n in range(3)]
    await state.add("endpoint", {"n": 9}, organisation_id=south.org.id)
    listed = await state.list("endpoint", organisation_id=north.org.id)
    assert [r.data["n"] for r in listed] == [2, 1, 0]  # newest first
    assert len(await state.list("endpoint", organisation_id=north.org.id, limit=2)) == 2
    # Looked up with the organisation a request came from, another's record is absent.
    target = made[0].id
    assert await state.get("endpoint", target, organisation_id=south.org.id) is None
    assert not await state.update("endpoint", target, {"n": -1}, organisation_id=south.org.id)
    assert not await state.delete("endpoint", target, organisation_id=south.org.id)
    kept = await state.get("endpoint", target, organisation_id=north.org.id)
    assert kept is not None and kept.data == {"n": 0}
    assert await state.delete("endpoint", target, organisation_id=north.org.id)


async def test_read_change_write_under_a_lock_loses_no_update(showme: Any, tenant: Tenant) -> None:
    state = showme.plugin_state("board")
    await state.add("counter", {"n": 0}, id="c-1")

    async def increment() -> None:
        async with state.transaction() as conn:
            current = await state.get("counter", "c-1", for_update=True, conn=conn)
            await asyncio.sleep(0.01)  # another copy reads meanwhile, without the lock
            await state.update("counter", "c-1", {"n": current.data["n"] + 1}, conn=conn)

    await asyncio.gather(*(increment() for _ in range(10)))
    assert (await state.get("counter", "c-1")).data == {"n": 10}
    with pytest.raises(ValueError, match="needs the transaction"):
        await state.get("counter", "c-1", for_update=True)
