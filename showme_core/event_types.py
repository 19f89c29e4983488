"""The event catalogue: every event type, when it fires, and its payload's schema.

The code that emits an event goes through :func:`check`, so the catalogue cannot drift from what
is emitted: an unknown type is refused at once, and a payload that does not match its schema is
refused where ``strict_events`` is set (tests, development) and logged elsewhere. ``docs/events.md``
is generated from here (``python -m showme_core.event_types``) and a test keeps it in step.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

log = structlog.get_logger("showme.events")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sms(_Payload):
    id: str
    created_at: str | None
    status: Literal["queued", "sent", "delivered", "undelivered", "failed"]
    segments: int
    provider: str | None
    error_code: str | None
    error_message: str | None
    updated_at: str | None


class Invite(_Payload):
    id: str
    phone: str
    incident_id: str | None
    language: str
    status: Literal["pending", "opened", "ended", "expired"]
    created_by: str | None
    created_at: str | None
    expires_at: str | None
    opened_at: str | None
    ended_at: str | None
    legal_hold: bool
    labels: dict[str, str]
    sms: Sms | None


class Location(_Payload):
    lat: float
    lon: float
    accuracy_m: float | None
    source: str
    captured_at: str | None


class Media(_Payload):
    id: str
    invite_id: str
    incident_id: str | None
    kind: Literal["picture", "still", "snapshot"]
    created_at: str | None
    captured_at: str | None
    sha256: str
    size: int
    width: int
    height: int
    content_type: str
    location: Location | None
    url: str
    thumbnail_url: str


class MediaRef(_Payload):
    id: str
    invite_id: str


class Stream(_Payload):
    invite_id: str
    state: Literal["requested", "connected", "stills", "failed", "ended"]
    route: Literal["direct", "relay"] | None = None
    reason: str | None = None


class Attempt(_Payload):
    sms_id: str
    provider: str
    outcome: str


class InvitePayload(_Payload):
    invite: Invite


class SmsPayload(_Payload):
    sms: Sms


class AttemptPayload(_Payload):
    attempt: Attempt


class CreditsPayload(_Payload):
    credits: int


class MediaPayload(_Payload):
    media: Media


class MediaPurgedPayload(_Payload):
    media: MediaRef


class StreamPayload(_Payload):
    stream: Stream


@dataclass(frozen=True)
class EventType:
    name: str
    payload: type[_Payload]
    when: str
    per_invite: bool = True  # the event carries the invite it concerns


_TYPES = [
    EventType(
        "invite.created",
        InvitePayload,
        "An invite was created (console, API, or an amended one from a plugin); `invite.sms` is "
        "its queued SMS, or null without one.",
    ),
    EventType(
        "invite.opened",
        InvitePayload,
        "The caller's page presented the link for the first time (a script ran: link previews "
        "do not count).",
    ),
    EventType(
        "invite.resent",
        InvitePayload,
        "A new link was sent by SMS for an invite not yet opened; the previous link stopped "
        "working.",
    ),
    EventType(
        "invite.ended",
        InvitePayload,
        "A dispatcher or a CAD ended the session: the link died at once.",
    ),
    EventType(
        "invite.expired",
        InvitePayload,
        "The invite reached its expiry without being ended (announced by the sweep within a "
        "minute, once).",
    ),
    EventType(
        "invite.legal_hold",
        InvitePayload,
        "An admin put the invite's media on legal hold, or lifted it (`invite.legal_hold`).",
    ),
    EventType(
        "sms.status",
        SmsPayload,
        "An invite's SMS changed status: sent, delivered, undelivered or failed (from the "
        "provider's answer or a delivery report); statuses only move forward.",
    ),
    EventType(
        "sms.attempt",
        AttemptPayload,
        "One provider of the chain could not send the SMS (`outcome`: not sent, unclear, or its "
        "error); the chain goes on or stops by the organisation's policy.",
    ),
    EventType(
        "credits.changed",
        CreditsPayload,
        "The organisation's SMS credits changed: charged for an SMS, refunded for a failed one, "
        "or topped up (`showme credits add`).",
        per_invite=False,
    ),
    EventType(
        "media.created",
        MediaPayload,
        "A picture, still or snapshot was stored durably (its `201` follows).",
    ),
    EventType(
        "media.purged",
        MediaPurgedPayload,
        "Retention removed a picture's bytes (the row stays as evidence).",
    ),
    EventType(
        "stream.requested",
        StreamPayload,
        "The caller granted the camera: a live session starts.",
    ),
    EventType(
        "stream.connected",
        StreamPayload,
        "Live video flows, directly or relayed (`route`).",
    ),
    EventType(
        "stream.stills",
        StreamPayload,
        "Video does not get through: the caller's page sends a still every 2 s instead.",
    ),
    EventType(
        "stream.failed",
        StreamPayload,
        "The stream failed or the camera was refused or unavailable (`reason`).",
    ),
    EventType(
        "stream.ended",
        StreamPayload,
        "The caller stopped the video, or the session ended with its link (`reason`: "
        "`link_ended` or `link_expired`).",
    ),
]

CATALOGUE: dict[str, EventType] = {kind.name: kind for kind in _TYPES}


class UnknownEventType(Exception):
    """Code tried to emit an event the catalogue does not list."""


class EventDoesNotMatch(Exception):
    """An event's payload does not match its catalogue schema."""


def check(type_: str, data: dict[str, Any], invite_id: str | None, *, strict: bool) -> None:
    """Refuse an unknown type; check the payload against its schema and whether it names an
    invite (refused when ``strict``, logged otherwise, so a payload drifting in production never
    costs a caller's picture)."""
    kind = CATALOGUE.get(type_)
    if kind is None:
        raise UnknownEventType(f"event type {type_!r} is not in the catalogue")
    try:
        kind.payload.model_validate(data)
        if kind.per_invite != (invite_id is not None):
            raise ValueError(f"invite_id must be {'set' if kind.per_invite else 'null'}")
    except (ValidationError, ValueError) as exc:
        if strict:
            raise EventDoesNotMatch(f"{type_}: {exc}") from exc
        # Where and what, never the values: a payload may carry a phone number or a position.
        problems = (
            [
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            ]
            if isinstance(exc, ValidationError)
            else [str(exc)]
        )
        log.error("event payload does not match its catalogue entry", type=type_, problems=problems)


def schema(type_: str) -> dict[str, Any]:
    """The JSON schema of a type's payload (``data``)."""
    return CATALOGUE[type_].payload.model_json_schema()


def _type_name(prop: dict[str, Any]) -> str:
    """A JSON schema property as a short type: ``Invite``, ``string or null``, ``"a" | "b"``."""
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{prop['$ref'].rsplit('/', 1)[-1].lower()})"
    if "anyOf" in prop:
        return " or ".join(_type_name(option) for option in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type", "any")
    if kind == "object" and "additionalProperties" in prop:
        return f"object of {_type_name(prop['additionalProperties'])}"
    if kind == "array":
        return f"array of {_type_name(prop.get('items', {}))}"
    return str(kind)


def _shape_table(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    lines = ["| field | type | required |", "| --- | --- | --- |"]
    for name, prop in schema.get("properties", {}).items():
        lines.append(f"| `{name}` | {_type_name(prop)} | {'yes' if name in required else 'no'} |")
    return lines


def markdown() -> str:
    """``docs/events.md``: every type, when it fires, and its payload's shape."""
    shapes: dict[str, dict[str, Any]] = {}
    for kind in _TYPES:
        shapes.update(kind.payload.model_json_schema().get("$defs", {}))
    lines = [
        "# The event catalogue",
        "",
        "Generated from `showme_core/event_types.py` (`python -m showme_core.event_types >",
        "docs/events.md`); a test fails when the two differ, and the service refuses, in its",
        "tests, to emit an event that does not match. Every event has the envelope",
        '`{"id", "type", "invite_id", "data", "created_at"}`: `id` grows by one per',
        "organisation in commit order, `invite_id` names the invite it concerns (null for",
        "organisation-wide events), and `data` has the shape of its type below. Where events",
        "reach you: the console feed and `GET /api/v1/events` (Server-Sent Events), durable",
        "consumers and CAD adapters (in order, at least once), and `showme_on_event` (best",
        "effort, unordered); see [api.md](api.md), [plugins.md](plugins.md) and [cad.md](cad.md).",
        "",
        "| type | `data` | `invite_id` | when it fires |",
        "| --- | --- | --- | --- |",
    ]
    for kind in _TYPES:
        data = ", ".join(
            f"`{name}`: {_type_name(prop)}"
            for name, prop in kind.payload.model_json_schema()["properties"].items()
        )
        invite = "set" if kind.per_invite else "null"
        lines.append(f"| `{kind.name}` | {{{data}}} | {invite} | {kind.when} |")
    lines += ["", "## Shapes", "", "Fields marked `or null` are always present, possibly null."]
    for name in sorted(shapes):
        lines += ["", f"### {name}", "", *_shape_table(shapes[name])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
