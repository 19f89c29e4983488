"""Two instances on one store: each delivery goes out once, from the instance that holds the
endpoint's lease, and the other takes over when that one stops."""

from __future__ import annotations

from typing import Any

from showme_core.app import ShowMe, create_app
from tests.adapters.showme_cad_webhook.conftest import Psap
from tests.adapters.showme_cad_webhook.helpers import (
    BASE,
    create_endpoint,
    deliveries,
    eventually,
    invite,
)
from tests.adapters.showme_cad_webhook.receiver import Receiver


async def test_two_instances_send_each_delivery_once(
    north: Psap, receiver: Receiver, showme: ShowMe
) -> None:
    # A second service on the same store, with settings of its own (another instance).
    other = create_app(showme.settings.model_copy()).state.showme
    await other.start()
    try:
        endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.*"])
        receiver.secrets = [endpoint["secret"]]
        made = [(await invite(north.cad))["id"] for _ in range(6)]
        await eventually(lambda: len(receiver.accepted()) >= 6, 15, "six deliveries")
        seen: list[Any] = receiver.accepted()
        assert len({r.message_id for r in seen}) == len(seen) == 6
        assert sorted(e["invite_id"] for e in receiver.accepted_events()) == sorted(made)

        # The first instance stops (and lets its leases go): the other one sends from now on. A
        # replay (written to the store) shows it without waiting on the core's event lanes.
        await showme.stop()
        listed = await deliveries(north.admin, endpoint["id"])
        assert {d["state"] for d in listed} == {"delivered"}
        again = listed[0]
        replay = f"{BASE}/endpoints/{endpoint['id']}/deliveries/{again['id']}/replay"
        assert (await north.admin.post(replay)).status_code == 202
        await eventually(lambda: len(receiver.accepted()) >= 7, 15, "the other instance's send")
        assert receiver.accepted()[-1].message_id == again["message_id"]
        assert len(receiver.received) == 7
    finally:
        await other.stop()
