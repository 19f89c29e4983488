"""Server errors are retried with backoff until the cap, then the delivery is failed (and stays
replayable)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.showme_cad_webhook.conftest import FAST, Psap
from tests.adapters.showme_cad_webhook.helpers import (
    create_endpoint,
    deliveries,
    eventually,
    invite,
)
from tests.adapters.showme_cad_webhook.receiver import Receiver


@pytest.fixture
def webhook_settings() -> dict[str, Any]:
    # Server errors are retried for one second only in these tests.
    return {**FAST, "give_up_after_seconds": 1.0}


async def test_server_errors_are_retried_until_the_cap(north: Psap, receiver: Receiver) -> None:
    endpoint = await create_endpoint(north.admin, receiver.url, event_types=["invite.created"])
    receiver.secrets = [endpoint["secret"]]
    receiver.status = 503
    receiver.extra_headers = {"Retry-After": "0"}
    await invite(north.cad)

    async def failed() -> list[dict[str, Any]]:
        return await deliveries(north.admin, endpoint["id"], state="failed")

    gone = (await eventually(failed, 10, "the delivery to be given up"))[0]
    assert gone["attempt_count"] > 2
    assert all(a["status_code"] == 503 for a in gone["attempts"])


@pytest.mark.parametrize("webhook_settings", [{**FAST, "keep_deliveries_seconds": 1.0}])
async def test_history_is_kept_for_its_time_and_the_queue_for_ever(
    north: Psap, make_receiver: Any
) -> None:
    alive, dead = make_receiver(), make_receiver()
    sent = await create_endpoint(north.admin, alive.url, event_types=["invite.created"])
    stuck = await create_endpoint(north.admin, dead.url, event_types=["invite.created"])
    alive.secrets, dead.secrets = [sent["secret"]], [stuck["secret"]]
    dead.down()
    await invite(north.cad)
    await eventually(alive.accepted, 10, "the delivery")
    await eventually(
        lambda: _none(deliveries(north.admin, sent["id"])), 10, "the delivered one to be removed"
    )
    # The undelivered one stays, past the keeping time, until it is sent or given up.
    waiting = await deliveries(north.admin, stuck["id"])
    assert [d["state"] for d in waiting] == ["pending"]


async def _none(listing: Any) -> bool:
    return not await listing
