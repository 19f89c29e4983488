"""What a delivery says: ``{"type", "timestamp", "data"}`` as Standard Webhooks suggests, with
``data`` the event as the API shows it, less what the endpoint may not have.

Nothing in it opens anything by itself: a picture is its authenticated API URL
(``<public_url>/api/v1/media/<id>``, which needs an API key with ``media:read``) and its SHA-256,
never a bearer token or a pre-signed link that a CAD would store and forward. The caller's phone
number and locations are replaced by null unless the endpoint is configured to receive them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from showme_cad_webhook.const import EIDO_TYPE

if TYPE_CHECKING:
    from datetime import datetime

    from showme_cad_webhook.endpoints import Endpoint
    from showme_core.events import Event

# Keys whose values are the caller's number or whereabouts, wherever they sit in a payload.
PHONE_KEYS = frozenset({"phone", "phone_number", "caller_phone"})
LOCATION_KEYS = frozenset({"location", "locations"})
URL_KEYS = frozenset({"url", "thumbnail_url"})


def without(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with every ``keys`` entry, at any depth, set to null."""
    if isinstance(value, dict):
        return {k: None if k in keys else without(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [without(item, keys) for item in value]
    return value


def absolute(value: Any, base: str) -> Any:
    """Media URLs made absolute on ``public_url`` (the CAD reads them outside ShowMe)."""
    if isinstance(value, dict):
        return {
            k: base + v
            if k in URL_KEYS and isinstance(v, str) and v.startswith("/api/")
            else absolute(v, base)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [absolute(item, base) for item in value]
    return value


def allowed(data: Any, endpoint: Endpoint) -> Any:
    """``data`` less the phone number and locations the endpoint may not receive."""
    if not endpoint.include_phone:
        data = without(data, PHONE_KEYS)
    if not endpoint.include_locations:
        data = without(data, LOCATION_KEYS)
    return data


def event_body(event: Event, endpoint: Endpoint, base: str) -> dict[str, Any]:
    """The delivery of one event."""
    shown = event.to_json()
    return {
        "type": event.type,
        "timestamp": shown["created_at"],
        "data": allowed(absolute(shown, base), endpoint),
    }


def eido_body(
    incident_id: str, event_id: int, eido: dict[str, Any], when: datetime
) -> dict[str, Any]:
    """The push of an incident's EIDO after the event ``event_id`` changed it. The EIDO comes
    already without the number and locations the endpoint may not have (``showme.eido``)."""
    return {
        "type": EIDO_TYPE,
        "timestamp": when.isoformat().replace("+00:00", "Z"),
        "data": {"incident_id": incident_id, "event_id": event_id, "eido": eido},
    }


def encoded(body: dict[str, Any]) -> bytes:
    """The bytes that are signed and sent."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
