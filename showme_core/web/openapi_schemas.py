"""The schemas of the OpenAPI document.

Request bodies come from the pydantic models that validate them (``web/schemas.py``). The
invites and media that answers carry, and every event's payload, come from the event catalogue
(``event_types.py``), whose models also check each event as it is emitted: the feed and the REST
answers show one invite and one media shape, and neither can drift from the code. The few shapes
only answers have are written here.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from showme_core import event_types
from showme_core.web.schemas import InviteCreate, LegalHold, PictureFields, SessionCreate

REF_TEMPLATE = "#/components/schemas/{model}"
ENVELOPE = ("id", "type", "invite_id", "data", "created_at")


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


def _models(
    models: list[type[BaseModel]], mode: JsonSchemaMode
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """The models' schemas, named as pydantic names them, and the reference to each model."""
    keys, top = models_json_schema([(model, mode) for model in models], ref_template=REF_TEMPLATE)
    refs = {model: dict(keys[(model, mode)]) for model in models}
    return refs, top.get("$defs", {})


def _open(node: Any) -> Any:
    """The schema without ``additionalProperties: false``: the catalogue forbids extra fields to
    check what the code emits, but clients must take an answer that gained a field."""
    if isinstance(node, dict):
        return {
            key: _open(value)
            for key, value in node.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(node, list):
        return [_open(value) for value in node]
    return node


def event_schema_name(event_type: str) -> str:
    """``invite.legal_hold`` -> ``InviteLegalHoldEvent``."""
    return "".join(part.capitalize() for part in re.split(r"[._]", event_type)) + "Event"


def _events(payloads: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    """One schema per event type (its envelope, its ``type`` and its payload, referred to by
    ``payloads``) and ``Event``, which is any of them, told apart by ``type``."""
    schemas: dict[str, Any] = {}
    for kind in event_types.CATALOGUE.values():
        schemas[event_schema_name(kind.name)] = {
            "type": "object",
            "description": kind.when,
            "required": list(ENVELOPE),
            "properties": {
                "id": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Grows by one per organisation, in commit order; resume "
                    "after it with `Last-Event-ID` or `?after=`.",
                },
                "type": {"type": "string", "const": kind.name},
                "invite_id": {"type": "string"} if kind.per_invite else {"type": "null"},
                "data": payloads[kind.payload],
                "created_at": {"type": "string", "format": "date-time"},
            },
        }
    mapping = {
        name: REF_TEMPLATE.format(model=event_schema_name(name)) for name in event_types.CATALOGUE
    }
    schemas["Event"] = {
        "description": "One event of the feed: the `data` of an SSE frame, as JSON.",
        "oneOf": [{"$ref": target} for target in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return schemas


_TIME = {"type": "string", "format": "date-time"}
_EXTRAS = {
    "type": "object",
    "required": ["scripts", "stylesheets"],
    "properties": {
        "scripts": {"type": "array", "items": {"type": "string"}},
        "stylesheets": {"type": "array", "items": {"type": "string"}},
    },
}


def _answers() -> dict[str, Any]:
    """The shapes only answers have."""
    return {
        "InviteList": {
            "type": "object",
            "required": ["items", "last_event_id"],
            "properties": {
                "items": {"type": "array", "items": ref("Invite")},
                "last_event_id": {
                    "type": "integer",
                    "description": "Start the event feed here (`?after=`): it replays whatever "
                    "changed since this list was read.",
                },
            },
        },
        "MediaList": {
            "type": "object",
            "required": ["items", "last_event_id"],
            "properties": {
                "items": {"type": "array", "items": ref("Media")},
                "last_event_id": {"type": "integer"},
            },
        },
        "CreatedInvite": {
            "description": "The invite, and this once its link (the store keeps only a hash).",
            "allOf": [
                ref("Invite"),
                {
                    "type": "object",
                    "required": ["link"],
                    "properties": {
                        "link": {
                            "type": ["string", "null"],
                            "format": "uri",
                            "description": "The caller's link, `<public_url>/c/#<token>`. Null "
                            "only in a replay whose sealing keys were all rotated away since.",
                        }
                    },
                },
            ],
        },
        "UploadedMedia": {
            "type": "object",
            "required": ["media"],
            "properties": {"media": ref("Media")},
        },
        "PictureUpload": {
            **PictureFields.model_json_schema(),
            "title": "PictureUpload",
            "properties": {
                # `format: binary` too, for generators that predate 3.1's `contentMediaType`.
                "picture": {
                    "type": "string",
                    "format": "binary",
                    "contentMediaType": "application/octet-stream",
                    "description": "The picture: JPEG, PNG, WebP or HEIC/HEIF, recognised by "
                    "its bytes whatever the part's name or type says; at most "
                    "`limits.max_upload_bytes` of `open`'s answer.",
                },
                **PictureFields.model_json_schema()["properties"],
            },
            "required": ["picture"],
        },
        "User": {
            "type": "object",
            "required": ["id", "email", "name", "role"],
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string"},
                "name": {"type": "string"},
                "role": {"type": "string", "enum": ["dispatcher", "supervisor", "admin"]},
            },
        },
        "Organisation": {
            "type": "object",
            "required": ["id", "slug", "name", "default_region", "default_language"],
            "properties": {
                "id": {"type": "string"},
                "slug": {"type": "string"},
                "name": {"type": "string"},
                "default_region": {"type": "string", "description": "ISO 3166 alpha-2"},
                "default_language": {"type": "string"},
                "invite_ttl_seconds": {"type": "integer"},
                "retention_seconds": {"type": "integer"},
                "sms_credits": {"type": "integer"},
                "languages": {"type": "array", "items": {"type": "string"}},
                "video": {
                    "type": "object",
                    "properties": {
                        "audio": {"type": "boolean"},
                        "facing": {"type": "string", "enum": ["environment", "user"]},
                    },
                },
                "allowed_countries": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Session": {
            "type": "object",
            "required": ["user", "organisation"],
            "properties": {"user": ref("User"), "organisation": ref("Organisation")},
        },
        "Me": {
            "type": "object",
            "required": ["user", "api_key", "organisation"],
            "properties": {
                "user": {"oneOf": [ref("User"), {"type": "null"}]},
                "api_key": {
                    "type": ["string", "null"],
                    "description": "`api_key:<id>` when an API key asks.",
                },
                "organisation": ref("Organisation"),
            },
        },
        "OpenedLink": {
            "type": "object",
            "required": ["invite", "organisation", "device", "limits"],
            "properties": {
                "invite": {
                    "type": "object",
                    "required": ["language", "expires_at", "status"],
                    "properties": {
                        "language": {"type": "string"},
                        "expires_at": _TIME,
                        "status": {"type": "string", "enum": ["pending", "opened"]},
                    },
                },
                "organisation": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
                "device": {
                    "type": "string",
                    "enum": ["holder", "waiting"],
                    "description": "`waiting`: another phone holds this link until the "
                    "dispatcher allows this one.",
                },
                "limits": {
                    "type": "object",
                    "required": ["max_upload_bytes"],
                    "properties": {"max_upload_bytes": {"type": "integer", "minimum": 1}},
                },
            },
        },
        "Outbox": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "invite_id", "to", "body", "created_at"],
                        "properties": {
                            "id": {"type": "string"},
                            "invite_id": {"type": "string"},
                            "to": {"type": "string", "description": "E.164"},
                            "body": {"type": "string", "description": "With the live link."},
                            "created_at": _TIME,
                        },
                    },
                }
            },
        },
        "PageExtras": {**_EXTRAS, "description": "Same-origin URLs of plugin files."},
        "Incident": {
            "type": "object",
            "description": "Every invite of the organisation that carries the CAD's id, with "
            "their pictures, live sessions and events, newest first.",
            "required": ["incident_id", "invites", "media", "streams", "events", "last_event_id"],
            "properties": {
                "incident_id": {"type": "string"},
                "invites": {"type": "array", "items": ref("Invite"), "maxItems": 200},
                "media": {"type": "array", "items": ref("Media"), "maxItems": 500},
                "streams": {"type": "array", "items": ref("StreamOutcome")},
                "events": {"type": "array", "items": ref("Event"), "maxItems": 1000},
                "last_event_id": {"type": "integer"},
            },
        },
        "StreamOutcome": {
            "type": "object",
            "description": "An invite's live session: the best it reached and its last state.",
            "required": ["invite_id", "outcome", "started_at", "state", "updated_at"],
            "properties": {
                "invite_id": {"type": "string"},
                "outcome": {
                    "type": "string",
                    "enum": ["video", "stills", "failed", "refused", "unavailable", "none"],
                },
                "started_at": {"type": ["string", "null"], "format": "date-time"},
                "state": {
                    "type": "string",
                    "enum": ["requested", "connected", "stills", "failed", "ended"],
                },
                "updated_at": _TIME,
            },
        },
        "Eido": {
            "type": "object",
            "description": "A NENA EIDO (Emergency Incident Data Object) JSON document; "
            "`docs/eido.md` says which parts ShowMe fills and what it leaves out.",
        },
    }


def schemas() -> dict[str, Any]:
    """``components.schemas`` of the document, but for the errors'."""
    _refs, requests = _models([InviteCreate, SessionCreate, LegalHold], "validation")
    payloads, catalogue = _models(
        [
            event_types.Invite,
            event_types.Media,
            *(kind.payload for kind in event_types.CATALOGUE.values()),
        ],
        "serialization",
    )
    found: dict[str, Any] = {}
    for part in (requests, _open(catalogue), _events(payloads), _answers()):
        clash = found.keys() & part.keys()
        assert not clash, f"two schemas named {sorted(clash)}"
        found.update(part)
    return found
