"""Retries with backoff until the cap, a receiver's refusal that retrying cannot change, and
replays of one delivery or of everything since a time."""

from __future__ import annotations

from typing import Any

from tests.adapters.showme_cad_webhook.conftest import Psap
from tests.adapters.showme_cad_webhook.helpers import (
    BASE,
    create_endpoint,
    deliveries,
    eventually,
    invite,
)
from tests.adapters.showme_cad_webhook.receiver import Receiver


async def test_give_up_then_replay(north: Psap, receiver: Receiver) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.created"])
    receiver.secrets = [endpoint["secret"]]
    receiver.status = 422  # refused as unreadable: not worth a day of retries
    await invite(north.cad)

    async def failed() -> list[dict[str, Any]]:
        return await deliveries(north.admin, endpoint["id"], state="failed")

    gone = (await eventually(failed, 10, "the delivery to fail"))[0]
    assert gone["attempt_count"] == 5  # client_error_attempts
    receiver.status = 204
    one = f"{BASE}/endpoints/{endpoint['id']}/deliveries/{gone['id']}"
    replayed = await north.admin.post(f"{one}/replay")
    assert replayed.status_code == 202, replayed.text
    await eventually(receiver.accepted, 10, "the replayed delivery")
    assert receiver.accepted()[0].message_id == gone["message_id"]

    async def recorded() -> dict[str, Any] | None:
        shown: dict[str, Any] = (await north.admin.get(one)).json()
        return shown if shown["state"] == "delivered" else None

    done = await eventually(recorded, 10, "the replay recorded as delivered")
    assert done["replays"] == 1 and done["attempt_count"] == 6

    # Everything since a time, again (a CAD restored from a backup).
    await invite(north.cad)
    await eventually(lambda: len(receiver.accepted()) >= 2, 10, "the second delivery")
    since = await north.admin.post(
        f"{BASE}/endpoints/{endpoint['id']}/replay", json={"since": "2000-01-01T00:00:00Z"}
    )
    assert since.status_code == 202 and since.json() == {"replayed": 2}
    await eventually(lambda: len(receiver.accepted()) >= 4, 10, "both replayed")
    ids = [r.message_id for r in receiver.accepted()]
    assert sorted(ids[2:]) == sorted(ids[:2])


async def test_redirects_are_not_followed(north: Psap, make_receiver: Any) -> None:
    receiver, elsewhere = make_receiver(), make_receiver()
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.created"])
    receiver.secrets = elsewhere.secrets = [endpoint["secret"]]
    receiver.next_statuses.append(307)
    receiver.extra_headers = {"Location": elsewhere.url}
    await invite(north.cad)
    await eventually(receiver.accepted, 10, "the delivery after the redirect")
    assert [r.status for r in receiver.received] == [307, 204]
    assert elsewhere.received == []
