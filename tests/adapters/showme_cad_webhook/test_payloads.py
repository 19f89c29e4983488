"""What a delivery body carries: the event as the API shows it, media as authenticated URLs, and
no number or location for an endpoint not allowed them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from showme_cad_webhook.endpoints import Endpoint
from showme_cad_webhook.payloads import encoded, event_body
from showme_core.events import Event

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
MEDIA = {
    "id": "m1",
    "invite_id": "i1",
    "incident_id": None,
    "sha256": "ab" * 32,
    "location": {"lat": 50.8, "lon": 4.3, "accuracy_m": 9.0, "source": "exif"},
    "url": "/api/v1/media/m1",
    "thumbnail_url": "/api/v1/media/m1/thumbnail",
}


def endpoint(**flags: bool) -> Endpoint:
    return Endpoint(
        id="e", organisation_id="o", url="https://x", created_at=NOW, updated_at=NOW, **flags
    )


def test_media_is_its_authenticated_url_and_hash_without_location() -> None:
    event = Event("o", 7, "media.created", "i1", {"media": MEDIA}, NOW)
    body = event_body(event, endpoint(), "https://showme.example")
    media = body["data"]["data"]["media"]
    assert media["url"] == "https://showme.example/api/v1/media/m1"
    assert media["thumbnail_url"] == "https://showme.example/api/v1/media/m1/thumbnail"
    assert media["sha256"] == "ab" * 32 and media["location"] is None
    assert set(body) == {"type", "timestamp", "data"}
    assert (body["type"], body["timestamp"]) == ("media.created", "2026-01-02T03:04:05Z")
    assert body["data"]["id"] == 7 and body["data"]["invite_id"] == "i1"
    allowed = event_body(event, endpoint(include_locations=True), "https://showme.example")
    assert allowed["data"]["data"]["media"]["location"]["lat"] == 50.8


def test_phone_numbers_leave_only_when_allowed() -> None:
    invite = {"invite": {"id": "i1", "phone": "+32470123456", "labels": {}}}
    event = Event("o", 1, "invite.created", "i1", invite, NOW)
    assert b"+32470123456" not in encoded(event_body(event, endpoint(), ""))
    assert b"+32470123456" in encoded(event_body(event, endpoint(include_phone=True), ""))
    assert json.loads(encoded(event_body(event, endpoint(), "")))["data"]["data"]["invite"] == {
        "id": "i1",
        "phone": None,
        "labels": {},
    }
