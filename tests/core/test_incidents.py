"""Incidents as a first-class key (docs/api.md, "Incidents"): every invite, picture, live
session and event that carries a CAD's incident id, within one organisation, whatever the id."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import pytest

from showme_core.testing import Tenant, phone_for, read_feed_backlog
from tests import pictures

INCIDENT = "INC/2026 0042"
PATH = f"/api/v1/incidents/{quote(INCIDENT, safe='')}"


async def invite(tenant: Tenant, phone: str, incident_id: str | None) -> dict[str, Any]:
    created = await tenant.cad.post(
        "/api/v1/invites", json={"phone": phone, "incident_id": incident_id, "send_sms": False}
    )
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


async def test_an_incident_gathers_its_invites_pictures_sessions_and_events(
    tenant: Tenant, showme_app: Any
) -> None:
    first = await invite(tenant, "+32470123456", INCIDENT)
    elsewhere = await invite(tenant, "+32470123457", "INC-OTHER")
    second = await invite(tenant, "+32470123458", INCIDENT)
    located = pictures.jpeg(
        pictures.scene(64, 48),
        pictures.gps_exif(
            50.8466, 4.3528, accuracy_m=12.0, taken="2026:11:30 03:12:09", offset="+01:00"
        ),
    )
    phone = phone_for(showme_app, first["link"])
    await phone.open()
    sent = await phone.upload(located)
    assert sent.status_code == 201, sent.text
    async with phone.live():
        pass
    other_phone = phone_for(showme_app, elsewhere["link"])
    await other_phone.open()
    assert (await other_phone.upload(pictures.jpeg(pictures.scene(32, 24)))).status_code == 201
    plain = phone_for(showme_app, second["link"])
    await plain.open()
    unlocated = await plain.upload(pictures.jpeg(pictures.scene(48, 32)))
    assert unlocated.status_code == 201

    answer = await tenant.cad.get(PATH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    incident = answer.json()
    assert incident["incident_id"] == INCIDENT
    assert [i["id"] for i in incident["invites"]] == [second["id"], first["id"]]  # newest first
    assert "link" not in str(incident["invites"])  # a link is a credential: never listed
    media = incident["media"]
    assert [m["invite_id"] for m in media] == [second["id"], first["id"]]
    assert {m["incident_id"] for m in media} == {INCIDENT}
    picture = media[1]
    fetched = await tenant.cad.get(picture["url"])
    assert hashlib.sha256(fetched.content).hexdigest() == picture["sha256"]
    assert picture["location"]["lat"] == pytest.approx(50.8466, abs=1e-4)
    assert picture["location"]["lon"] == pytest.approx(4.3528, abs=1e-4)
    assert picture["captured_at"].startswith("2026-11-30T02:12:09")
    assert media[0]["location"] is None
    assert incident["streams"] == [
        {
            "invite_id": first["id"],
            "outcome": "video",
            "state": "ended",
            "started_at": incident["streams"][0]["started_at"],
            "updated_at": incident["streams"][0]["updated_at"],
        }
    ]
    ids = [event["id"] for event in incident["events"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert {event["invite_id"] for event in incident["events"]} == {first["id"], second["id"]}
    assert {"invite.created", "invite.opened", "media.created", "stream.connected"} <= {
        event["type"] for event in incident["events"]
    }
    assert incident["last_event_id"] >= ids[0]

    # The lists filter by the same key.
    invites = await tenant.cad.get("/api/v1/invites", params={"incident_id": INCIDENT})
    assert [i["id"] for i in invites.json()["items"]] == [second["id"], first["id"]]
    listed = await tenant.cad.get("/api/v1/media", params={"incident_id": INCIDENT})
    assert [m["id"] for m in listed.json()["items"]] == [m["id"] for m in media]
    # And media.created carries it, for a consumer that keys on the incident.
    feed = await read_feed_backlog(showme_app, {"Authorization": f"Bearer {tenant.api_key}"})
    created = [e for e in feed if e["type"] == "media.created"]
    assert {e["data"]["media"]["incident_id"] for e in created} == {INCIDENT, "INC-OTHER"}


ODD_IDS = [
    "INC/42",
    "A%2FB",
    "../x",
    "Zürich/7 A",
    "x" * 100,
    "ends/eido",
    "eido",
    "a?b#c",
    "100%",
    ".",
    "..",
]


def encoded(incident_id: str) -> str:
    # Dots alone would be removed from the path by any client: sent as %2E (docs/api.md).
    if set(incident_id) == {"."}:
        return "%2E" * len(incident_id)
    return quote(incident_id, safe="")


async def test_any_incident_id_works_in_the_path_and_nowhere_else(make_tenant: Any) -> None:
    north, south = await make_tenant(), await make_tenant()
    for n, incident_id in enumerate(ODD_IDS):
        made = await invite(north, f"+324701234{n:02d}", incident_id)
        path = f"/api/v1/incidents/{encoded(incident_id)}"
        found = await north.cad.get(path)
        assert found.status_code == 200, (incident_id, found.text)
        assert found.json()["incident_id"] == incident_id
        assert [i["id"] for i in found.json()["invites"]] == [made["id"]]
        eido = await north.cad.get(f"{path}/eido")
        assert eido.status_code == 200, (incident_id, eido.text)
        assert eido.json()["incidentComponent"]["internalIncidentId"] == incident_id
        refused = await south.cad.get(path)
        assert refused.status_code == 404, incident_id
        assert refused.json()["error"]["code"] == "incident_not_found"
    too_long = await north.cad.get(f"/api/v1/incidents/{'x' * 101}")
    assert too_long.status_code == 422
    unencoded = await north.cad.get("/api/v1/incidents/INC/42")
    assert unencoded.status_code == 404 and unencoded.json()["error"]["code"] == "not_found"


async def test_an_incident_needs_both_read_scopes(showme: Any, tenant: Tenant) -> None:
    from showme_core.accounts import create_api_key
    from showme_core.testing import client_for

    await invite(tenant, "+32470123456", INCIDENT)
    async with showme.transaction() as tx:
        _key, secret = await create_api_key(
            tx.conn, organisation_id=tenant.org.id, name="invites only", scopes=["invites:read"]
        )
    app = tenant.cad._transport.app  # type: ignore[attr-defined]
    async with client_for(app, headers={"Authorization": f"Bearer {secret}"}) as reader:
        for path in (PATH, f"{PATH}/eido"):
            refused = await reader.get(path)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "missing_scope"
