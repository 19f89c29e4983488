"""The EIDO pushed on every change of an incident, without the caller's number or locations
unless the endpoint may have them, and with pictures as authenticated URLs and hashes."""

from __future__ import annotations

from typing import Any

from standardwebhooks import Webhook

from showme_core.app import ShowMe
from tests.adapters.showme_cad_webhook.conftest import Psap
from tests.adapters.showme_cad_webhook.helpers import (
    create_endpoint,
    eventually,
    invite,
    link_token,
    upload,
)

PHONE = "+32470123456"


def pushes(receiver: Any) -> list[dict[str, Any]]:
    return [r.payload for r in receiver.accepted() if r.payload["type"] == "incident.eido"]


async def test_the_eido_is_pushed_on_every_change(
    north: Psap, make_receiver: Any, anonymous: Any, showme: ShowMe
) -> None:
    plain, trusted = make_receiver(), make_receiver()
    # An endpoint that wants the EIDO and no event, and one that may see everything.
    only_eido = await create_endpoint(north.admin, plain.url, event_types=[], push_eido=True)
    everything = await create_endpoint(
        north.admin, trusted.url, push_eido=True, include_phone=True, include_locations=True
    )
    plain.secrets, trusted.secrets = [only_eido["secret"]], [everything["secret"]]
    created = await invite(north.cad, incident_id="INC 2024/7")
    await eventually(lambda: pushes(plain), 10, "the first push")
    picture = (await upload(anonymous, link_token(created)))["media"]

    def pushed_with_picture(receiver: Any) -> dict[str, Any] | None:
        for payload in reversed(pushes(receiver)):
            if payload["data"]["eido"].get("mediaComponent"):
                return payload
        return None

    latest = await eventually(lambda: pushed_with_picture(plain), 10, "a push with the picture")
    assert {r.payload["type"] for r in plain.accepted()} == {"incident.eido"}
    assert latest["data"]["incident_id"] == "INC 2024/7"
    media = latest["data"]["eido"]["mediaComponent"][0]
    assert media["uri"] == f"{showme.public_base()}/api/v1/media/{picture['id']}"
    raw = b"".join(r.body for r in plain.received)
    assert PHONE.encode() not in raw
    assert b"locationComponent" not in raw
    assert link_token(created).encode() not in raw
    seen = plain.accepted()[-1]
    Webhook(only_eido["secret"]).verify(seen.body, seen.headers)

    full = await eventually(lambda: pushed_with_picture(trusted), 10, "the trusted push")
    assert full["data"]["eido"].get("locationComponent")
    assert PHONE.encode() in b"".join(r.body for r in trusted.received)
    # The trusted endpoint also gets the events themselves.
    assert "media.created" in {r.payload["type"] for r in trusted.accepted()}
