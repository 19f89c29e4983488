"""The EIDO of an incident: NENA's shape (checked by a schema written from NENA-STA-021), its
locations as PIDF-LO (RFC 4119, RFC 5491), and nothing the receiver is not to have."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from showme_core import pidf
from showme_core.eido import caller_pseudonym
from showme_core.testing import Tenant
from tests import pictures

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "eido.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

INCIDENT = "INC/42 A"
EIDO_PATH = "/api/v1/incidents/INC%2F42%20A/eido"
SMS_PHONE = "+32470123456"
READ_OUT_PHONE = "+32471987654"
HOSTILE_REASON = "<img src=x onerror=alert(1)>"
NS = {
    "pidf": pidf.PIDF,
    "dm": pidf.DATA_MODEL,
    "gp": pidf.GEOPRIV,
    "gbp": pidf.BASIC_POLICY,
    "gs": pidf.GEO_SHAPE,
    "gml": pidf.GML,
}
MEDIA_URI = re.compile(r"http://showme\.test/api/v1/media/([0-9a-f]{32})")
LABEL_HASH = re.compile(r"SHA-256 ([0-9a-f]{64})$")


@dataclass
class Scene:
    """An incident with two invites (one sent by SMS, one read out), four pictures (three with a
    position, found three ways) and a live session."""

    sms_invite: str
    read_out_invite: str
    tokens: list[str]
    media: dict[str, dict[str, Any]]  # by id, as the API shows it

    def located(self) -> dict[str, dict[str, Any]]:
        return {key: item for key, item in self.media.items() if item["location"]}


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.02)


async def upload(
    client: httpx.AsyncClient, token: str, data: bytes, fields: dict[str, str] | None = None
) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/caller/media",
        headers={"X-ShowMe-Link": token},
        files={"picture": ("picture.jpg", data, "image/jpeg")},
        data=fields or {},
    )
    assert answer.status_code == 201, answer.text
    item: dict[str, Any] = answer.json()["media"]
    return item


async def stream(showme: Any, tenant: Tenant, invite_id: str, state: str, **extra: str) -> None:
    async with showme.transaction() as tx:
        await tx.event(
            tenant.org.id,
            f"stream.{state}",
            {"stream": {"invite_id": invite_id, "state": state, **extra}},
            invite_id=invite_id,
        )


async def make_scene(showme: Any, client: httpx.AsyncClient, tenant: Tenant) -> Scene:
    by_sms = await tenant.client.post(
        "/api/v1/invites", json={"phone": SMS_PHONE, "incident_id": INCIDENT}
    )
    read_out = await tenant.cad.post(
        "/api/v1/invites",
        json={"phone": READ_OUT_PHONE, "incident_id": INCIDENT, "send_sms": False},
    )
    assert by_sms.status_code == read_out.status_code == 201, (by_sms.text, read_out.text)
    sms_invite, read_out_invite = by_sms.json()["id"], read_out.json()["id"]
    tokens = [answer.json()["link"].split("#", 1)[1] for answer in (by_sms, read_out)]

    async def sms_sent() -> bool:
        invite = (await tenant.cad.get(f"/api/v1/invites/{sms_invite}")).json()
        return bool(invite["sms"]) and invite["sms"]["status"] == "sent"

    # The SMS goes out in the background: the incident is complete once its status is in.
    await wait_until(sms_sent, "the SMS being sent")
    opened = await client.post("/api/v1/caller/open", headers={"X-ShowMe-Link": tokens[1]})
    assert opened.status_code == 200, opened.text

    items = [
        # The position and its accuracy in the picture's own EXIF, with the local capture time.
        await upload(
            client,
            tokens[0],
            pictures.jpeg(
                exif=pictures.gps_exif(
                    50.846557, 4.352131, accuracy_m=4, taken="2026:11:24 20:01:02", offset="+01:00"
                )
            ),
        ),
        await upload(client, tokens[0], pictures.jpeg()),  # no position at all
        # A position without accuracy: a point, not a circle.
        await upload(client, tokens[1], pictures.jpeg(exif=pictures.gps_exif(51.21989, 4.40346))),
        # A position the caller's page read from an original it could not send as it was.
        await upload(
            client,
            tokens[1],
            pictures.jpeg(),
            {
                "lat": "50.8503",
                "lon": "4.3517",
                "accuracy_m": "12.5",
                "captured_at": "2026-11-24T07:59:41-05:00",
            },
        ),
    ]
    for state, extra in (("requested", {}), ("connected", {"route": "relay"}), ("ended", {})):
        await stream(showme, tenant, read_out_invite, state, **extra)
    await stream(showme, tenant, sms_invite, "failed", reason=HOSTILE_REASON)
    ended = await tenant.cad.post(f"/api/v1/invites/{sms_invite}/end")
    assert ended.status_code == 200, ended.text
    return Scene(sms_invite, read_out_invite, tokens, {item["id"]: item for item in items})


async def eido_of(tenant: Tenant) -> dict[str, Any]:
    answer = await tenant.cad.get(EIDO_PATH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    document: dict[str, Any] = answer.json()
    return document


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def parse_pidf(text: str) -> ET.Element:
    # Our own output, parsed to check it: no entity or external reference is expanded.
    return ET.fromstring(text)  # noqa: S314


def by_id(document: dict[str, Any], component: str) -> dict[str, dict[str, Any]]:
    return {item["$id"]: item for item in document.get(component, [])}


# ---- the standard's shape ----------------------------------------------------------------------


def test_the_schema_is_a_valid_schema_that_can_fail() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    agency = {"$ref": "urn:uuid:00000000-0000-5000-8000-000000000000"}
    minimal: dict[str, Any] = {
        "$id": "urn:emergency:uid:incidentid:abc:showme.test",
        "lastUpdateTimeStamp": "2026-11-24T09:01:02Z",
        "updatedByAgencyReference": agency,
        "eidoVersion": "1.0",
        "issuingElementIdentification": "showme.test",
        "agencyComponent": [
            {
                "$id": agency["$ref"],
                "lastUpdateTimeStamp": "2026-11-24T09:01:02Z",
                "updatedByAgencyReference": agency,
                "agencyRoleDescriptionRegistryText": ["CallReceiving"],
                "agencyType": ["psap"],
            }
        ],
    }
    VALIDATOR.validate(minimal)
    for broken in (
        {**minimal, "eidoVersion": "2.0"},
        {**minimal, "lastUpdateTimeStamp": "yesterday"},
        {**minimal, "updatedByAgencyReference": "urn:not-a-reference-object"},
        {**minimal, "agencyComponent": []},
        {**minimal, "agencyComponent": [{**minimal["agencyComponent"][0], "agencyTyp": ["psap"]}]},
        {k: v for k, v in minimal.items() if k != "issuingElementIdentification"},
    ):
        assert list(VALIDATOR.iter_errors(broken)), broken


async def test_the_eido_of_an_incident_follows_the_standard(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    scene = await make_scene(showme, showme_client, tenant)
    document = await eido_of(tenant)
    VALIDATOR.validate(document)
    # The same incident gives the same document: every id is derived, none drawn at random.
    assert await eido_of(tenant) == document

    # Every reference resolves to exactly one component.
    ids = [node["$id"] for node in walk(document) if "$id" in node]
    assert len(ids) == len(set(ids))
    references = [node["$ref"] for node in walk(document) if "$ref" in node]
    assert references and set(references) <= set(ids)

    agency = document["agencyComponent"][0]
    assert agency["agencyType"] == ["psap"]
    assert document["updatedByAgencyReference"] == {"$ref": agency["$id"]}
    assert document["$id"].startswith("urn:emergency:uid:incidentid:")
    assert document["$id"].endswith(":showme.test")
    assert document["issuingElementIdentification"] == "showme.test"
    assert document["incidentComponent"]["internalIncidentId"] == INCIDENT
    incident = (await tenant.cad.get(EIDO_PATH.removesuffix("/eido"))).json()
    # The newest thing known: an event, a picture, or a change of an invite.
    times = [e["created_at"] for e in incident["events"]] + [
        m["created_at"] for m in incident["media"]
    ]
    for invite in incident["invites"]:
        times += [invite[key] for key in ("created_at", "opened_at", "ended_at") if invite[key]]
    assert document["lastUpdateTimeStamp"] == max(times, key=datetime.fromisoformat)

    # One call per invite, placed by the PSAP, oldest first.
    calls = document["callComponent"]
    assert [c["$id"] for c in calls] == [
        f"urn:emergency:uid:callid:{caller_pseudonym(invite)}:showme.test"
        for invite in (scene.sms_invite, scene.read_out_invite)
    ]
    assert {c["direction"] for c in calls} == {"outgoing"}
    assert [c["localCallType"] for c in calls] == ["showme-link-sms", "showme-link"]
    assert [c["callStateRegistryText"] for c in calls] == ["callEnd", "callAnswered"]
    assert "answerDate" not in calls[0] and "answerDate" in calls[1]
    created = {i["id"]: i["created_at"] for i in incident["invites"]}
    assert calls[0]["callStartTimestamp"] == created[scene.sms_invite]
    callbacks = by_id(document, "callbackComponent")
    assert [callbacks[c["callBackReference"]["$ref"]]["callBackInformationUri"] for c in calls] == [
        [f"tel:{SMS_PHONE}"],
        [f"tel:{READ_OUT_PHONE}"],
    ]

    # Each picture: its authenticated URL, its type, and a label with its kind, time and hash.
    media = by_id(document, "mediaComponent")
    assert len(media) == len(scene.media)
    for component in media.values():
        found = MEDIA_URI.fullmatch(component["uri"])
        assert found, component["uri"]
        item = scene.media[found.group(1)]
        assert component["contentType"] == "image/jpeg"
        assert component["label"].startswith(f"{item['kind'].capitalize()} from the caller")
        assert f"received {item['created_at']}" in component["label"]
        hashed = LABEL_HASH.search(component["label"])
        assert hashed and hashed.group(1) == item["sha256"]
    exif_picture = next(m for m in scene.media.values() if m["location"] and m["captured_at"])
    assert f"taken {exif_picture['captured_at']}" in next(
        c["label"] for c in media.values() if c["uri"].endswith(exif_picture["id"])
    )
    # A call lists its own pictures.
    for call, invite in zip(calls, (scene.sms_invite, scene.read_out_invite), strict=True):
        own = {media[r["$ref"]]["uri"].rsplit("/", 1)[1] for r in call["mediaReferences"]}
        assert own == {key for key, item in scene.media.items() if item["invite_id"] == invite}

    # One location per located picture, each linked to its picture.
    locations = by_id(document, "locationComponent")
    assert len(locations) == len(scene.located()) == 3
    linked = set()
    for location in locations.values():
        assert location["locationTypeDescriptionRegistryText"] == "Caller"
        [picture] = location["mediaReferences"]
        linked.add(media[picture["$ref"]]["uri"].rsplit("/", 1)[1])
    assert linked == set(scene.located())
    assert {r["$ref"] for r in document["incidentComponent"]["locationReference"]} == set(locations)

    # One note per event of the incident, in time order, as escaped HTML.
    notes = document["notesComponent"]
    assert len(notes) == len(incident["events"])
    assert [n["lastUpdateTimeStamp"] for n in notes] == sorted(
        (e["created_at"] for e in incident["events"]), key=datetime.fromisoformat
    )
    texts = [n["notesActionComments"] for n in notes]
    for text in texts:
        assert text.startswith("<p>") and text.endswith("</p>") and "<" not in text[3:-4]
    assert "<p>Video link created and sent by SMS.</p>" in texts
    assert any(t.startswith("<p>Video link created; no SMS sent") for t in texts)
    assert "<p>Live video connected through the relay.</p>" in texts
    assert "<p>The caller stopped the video.</p>" in texts
    assert "<p>Live video failed (&lt;img src=x onerror=alert(1)&gt;).</p>" in texts
    noted = {r["$ref"] for call in calls for r in call["notesReference"]}
    assert noted == {n["$id"] for n in notes}


# ---- locations ---------------------------------------------------------------------------------


async def test_each_location_is_a_pidf_lo_that_names_the_caller_by_a_pseudonym(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    scene = await make_scene(showme, showme_client, tenant)
    document = await eido_of(tenant)
    media = by_id(document, "mediaComponent")
    retention = timedelta(seconds=tenant.org.retention_seconds)
    shapes = set()
    entities: dict[str, str] = {}
    for location in document["locationComponent"]:
        media_id = media[location["mediaReferences"][0]["$ref"]]["uri"].rsplit("/", 1)[1]
        item = scene.media[media_id]
        place = item["location"]
        text = location["locationByValue"]
        assert text.startswith("<?xml")
        for secret in (SMS_PHONE, READ_OUT_PHONE, "470", scene.sms_invite, scene.read_out_invite):
            assert secret not in text

        root = parse_pidf(text)
        assert root.tag == f"{{{pidf.PIDF}}}presence"
        entity = root.attrib["entity"]
        assert re.fullmatch(r"pres:[0-9a-f]{32}@showme\.test", entity)
        entities[item["invite_id"]] = entities.get(item["invite_id"], entity)
        assert entities[item["invite_id"]] == entity  # one pseudonym per invite
        device = root.find("dm:device", NS)
        assert device is not None
        assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", device.findtext("dm:deviceID", "", NS))
        geopriv = device.find("gp:geopriv", NS)
        assert geopriv is not None
        info = geopriv.find("gp:location-info", NS)
        assert info is not None and len(info) == 1
        shape = info[0]
        assert shape.attrib["srsName"] == "urn:ogc:def:crs:EPSG::4326"
        lat, lon = (float(v) for v in shape.findtext("gml:pos", "", NS).split())
        assert (lat, lon) == (place["lat"], place["lon"])
        if place["accuracy_m"] is None:
            assert shape.tag == f"{{{pidf.GML}}}Point"
            shapes.add("point")
        else:
            assert shape.tag == f"{{{pidf.GEO_SHAPE}}}Circle"
            radius = shape.find("gs:radius", NS)
            assert radius is not None
            assert radius.attrib["uom"] == "urn:ogc:def:uom:EPSG::9001"
            assert float(radius.text or "") == place["accuracy_m"]
            shapes.add("circle")

        rules = geopriv.find("gp:usage-rules", NS)
        assert rules is not None
        assert rules.findtext("gbp:retransmission-allowed", "", NS) == "false"
        expiry = datetime.fromisoformat(rules.findtext("gbp:retention-expiry", "", NS))
        assert expiry == datetime.fromisoformat(item["created_at"]) + retention
        assert geopriv.findtext("gp:method", "", NS) == "GPS"
        stamp = device.findtext("dm:timestamp", "", NS)
        assert stamp == (place["captured_at"] or item["captured_at"] or item["created_at"])
        assert datetime.fromisoformat(stamp).tzinfo is not None
    assert shapes == {"point", "circle"}
    assert len(set(entities.values())) == 2
    # The EXIF picture's position keeps the phone's local time; the page's keeps its own.
    stamps = {m["location"]["captured_at"] for m in scene.located().values()}
    assert {"2026-11-24T20:01:02+01:00", "2026-11-24T07:59:41-05:00"} <= stamps


def test_a_pidf_lo_escapes_what_it_carries_and_says_point_without_accuracy() -> None:
    moment = datetime(2026, 11, 24, 9, 1, 2, tzinfo=UTC)
    place = pidf.DeviceLocation(
        entity='pres:a&b<"c">@showme.test',
        device_id="urn:uuid:1",
        lat=-33.8688,
        lon=151.2093,
        radius_m=0.0,
        method=None,
        timestamp=moment.astimezone(timezone(timedelta(hours=11))),
        retention_expiry=moment + timedelta(hours=6),
    )
    root = parse_pidf(pidf.pidf_lo(place))
    assert root.attrib["entity"] == 'pres:a&b<"c">@showme.test'
    info = root.find("dm:device/gp:geopriv/gp:location-info", NS)
    assert (
        info is not None and info[0].tag == f"{{{pidf.GML}}}Point"
    )  # a zero radius claims nothing
    assert info.findtext("gml:Point/gml:pos", "", NS) == "-33.8688 151.2093"
    assert root.find("dm:device/gp:geopriv/gp:method", NS) is None
    assert root.findtext("dm:device/dm:timestamp", "", NS) == "2026-11-24T20:01:02+11:00"
    rules = root.find("dm:device/gp:geopriv/gp:usage-rules", NS)
    assert rules is not None
    assert rules.findtext("gbp:retention-expiry", "", NS) == "2026-11-24T15:01:02Z"


# ---- what leaves ShowMe ------------------------------------------------------------------------


async def test_the_receiver_gets_no_phone_and_no_position_unless_it_is_to_have_them(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    scene = await make_scene(showme, showme_client, tenant)
    # Each coordinate as the PIDF-LO writes it, not within a longer number (a time's fraction).
    positions = [
        re.compile(rf"(?<![0-9]){re.escape(repr(m['location'][axis]))}(?![0-9])")
        for m in scene.located().values()
        for axis in ("lat", "lon")
    ]
    phones = [SMS_PHONE, READ_OUT_PHONE, SMS_PHONE[3:], READ_OUT_PHONE[3:]]
    secrets = [*scene.tokens, tenant.api_key, scene.sms_invite, scene.read_out_invite]

    everything = json.dumps(
        await showme.eido(tenant.org.id, INCIDENT, include_phone=True, include_locations=True)
    )
    # Positive control: the same search finds them when they are to be there.
    assert all(phone in everything for phone in phones[:2])
    assert all(position.search(everything) for position in positions)

    by_default = await showme.eido(tenant.org.id, INCIDENT)
    assert by_default == await showme.eido(
        tenant.org.id, INCIDENT, include_phone=False, include_locations=False
    )
    for phone, located in ((False, True), (True, False), (False, False)):
        document = await showme.eido(
            tenant.org.id, INCIDENT, include_phone=phone, include_locations=located
        )
        VALIDATOR.validate(document)
        text = json.dumps(document)
        assert all(secret not in text for secret in secrets)
        if not phone:
            assert "callbackComponent" not in document and "tel:" not in text
            assert all(number not in text for number in phones)
        if not located:
            assert "locationComponent" not in document and pidf.PIDF not in text
            assert not any(position.search(text) for position in positions)
            assert all("locationReference" not in node for node in walk(document))
        ids = {node["$id"] for node in walk(document) if "$id" in node}
        assert {node["$ref"] for node in walk(document) if "$ref" in node} <= ids


async def test_media_uris_are_the_authenticated_api_with_nothing_secret_in_them(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    scene = await make_scene(showme, showme_client, tenant)
    document = await eido_of(tenant)
    for component in document["mediaComponent"]:
        uri = component["uri"]
        assert MEDIA_URI.fullmatch(uri), uri  # no query, no fragment, no token
        assert all(token not in json.dumps(document) for token in scene.tokens)
        anonymous = await showme_client.get(uri)
        assert anonymous.status_code == 401
        fetched = await tenant.cad.get(uri)
        assert fetched.status_code == 200
        hashed = LABEL_HASH.search(component["label"])
        assert hashed and hashlib.sha256(fetched.content).hexdigest() == hashed.group(1)


async def test_an_incident_id_with_a_slash_and_spaces_works_and_another_organisation_gets_404(
    showme: Any,
    showme_client: httpx.AsyncClient,
    tenant: Tenant,
    make_tenant: Callable[..., Awaitable[Tenant]],
) -> None:
    await make_scene(showme, showme_client, tenant)
    document = await eido_of(tenant)
    assert document["incidentComponent"]["internalIncidentId"] == "INC/42 A"
    other = await make_tenant()
    for client in (other.cad, other.client):
        refused = await client.get(EIDO_PATH)
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "incident_not_found"
    # The same CAD id in another organisation is another incident, with another EIDO id.
    await other.cad.post(
        "/api/v1/invites",
        json={"phone": READ_OUT_PHONE, "incident_id": INCIDENT, "send_sms": False},
    )
    theirs = (await other.cad.get(EIDO_PATH)).json()
    assert theirs["$id"] != document["$id"]
    assert theirs["agencyComponent"][0]["$id"] != document["agencyComponent"][0]["$id"]
    assert copy.deepcopy(document) == await eido_of(tenant)  # untouched by the other's
