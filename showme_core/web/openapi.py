"""The OpenAPI 3.1 document of ``/api/v1``. A test keeps it in step with the route table."""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core import __version__
from showme_core.web.schemas import InviteCreate, LegalHold, PictureFields, SessionCreate

_ERROR = {"$ref": "#/components/responses/Error"}
_AUTH: list[dict[str, list[str]]] = [{"apiKey": []}, {"session": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: str | None = None,
    auth: bool = True,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    op["security"] = _AUTH if auth else []
    if parameters:
        op["parameters"] = parameters
    return op


_INVITE_ID = {"name": "invite_id", "in": "path", "required": True, "schema": {"type": "string"}}
_INVITE = {"$ref": "#/components/schemas/Invite"}
_MEDIA_ID = {"name": "media_id", "in": "path", "required": True, "schema": {"type": "string"}}
_MEDIA_LIST = _json(
    {
        "type": "object",
        "required": ["items", "last_event_id"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Media"}},
            "last_event_id": {"type": "integer"},
        },
    },
    "Pictures, newest first, and the feed position to resume from",
)
_PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "before", "in": "query", "schema": {"type": "string", "format": "date-time"}},
]
_JPEG = {"description": "The JPEG", "content": {"image/jpeg": {}}}
_LINK = {"name": "X-ShowMe-Link", "in": "header", "required": True, "schema": {"type": "string"}}
# The phone's own id: one phone holds a link, others wait until the dispatcher allows them.
_DEVICE = {
    "name": "X-ShowMe-Device",
    "in": "header",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
}
_EXTRAS = _json(
    {
        "type": "object",
        "properties": {
            "scripts": {"type": "array", "items": {"type": "string"}},
            "stylesheets": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Same-origin URLs of plugin scripts and stylesheets.",
)


def _schemas() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "InviteCreate": InviteCreate.model_json_schema(),
        "SessionCreate": SessionCreate.model_json_schema(),
        "LegalHold": LegalHold.model_json_schema(),
        "PictureUpload": {
            **PictureFields.model_json_schema(),
            "properties": {
                "picture": {"type": "string", "contentMediaType": "image/*"},
                **PictureFields.model_json_schema()["properties"],
            },
            "required": ["picture"],
        },
        "Location": {
            "type": "object",
            "required": ["lat", "lon", "source"],
            "properties": {
                "lat": {"type": "number"},
                "lon": {"type": "number"},
                "accuracy_m": {"type": ["number", "null"]},
                "source": {"type": "string", "enum": ["exif", "caller_exif", "geolocation"]},
                "captured_at": nullable_time,
            },
        },
        "Media": {
            "type": "object",
            "required": ["id", "invite_id", "created_at", "sha256", "width", "height", "url"],
            "properties": {
                "id": {"type": "string"},
                "invite_id": {"type": "string"},
                "kind": {"type": "string", "enum": ["picture", "still", "snapshot"]},
                "created_at": {"type": "string", "format": "date-time"},
                "captured_at": nullable_time,
                "sha256": {"type": "string", "description": "SHA-256 of the bytes `url` returns"},
                "size": {"type": "integer"},
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "content_type": {"type": "string"},
                "location": {
                    "oneOf": [{"$ref": "#/components/schemas/Location"}, {"type": "null"}]
                },
                "url": {"type": "string"},
                "thumbnail_url": {"type": "string"},
            },
        },
        "Sms": {
            "type": "object",
            "required": ["id", "status", "segments"],
            "properties": {
                "id": {"type": "string"},
                "status": {
                    "type": "string",
                    "enum": ["queued", "sent", "delivered", "undelivered", "failed"],
                },
                "segments": {"type": "integer"},
                "provider": {"type": ["string", "null"]},
                "error_code": {"type": ["string", "null"]},
                "error_message": {"type": ["string", "null"]},
                "updated_at": nullable_time,
            },
        },
        "Invite": {
            "type": "object",
            "required": ["id", "phone", "status", "created_at", "expires_at"],
            "properties": {
                "id": {"type": "string"},
                "phone": {"type": "string", "description": "E.164"},
                "incident_id": {"type": ["string", "null"]},
                "language": {"type": "string"},
                "status": {"type": "string", "enum": ["pending", "opened", "ended", "expired"]},
                "created_by": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "expires_at": {"type": "string", "format": "date-time"},
                "opened_at": nullable_time,
                "ended_at": nullable_time,
                "legal_hold": {"type": "boolean"},
                "sms": {"oneOf": [{"$ref": "#/components/schemas/Sms"}, {"type": "null"}]},
                "link": {
                    "type": "string",
                    "description": "Only in the answer to the creation: the caller's link.",
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "request_id": {"type": ["string", "null"]},
                    },
                }
            },
        },
    }


@cache
def build_document() -> dict[str, Any]:
    ok_object = _json({"type": "object"}, "OK")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ShowMe",
            "version": __version__,
            "description": "Invite a caller to show the scene; follow it live. "
            "CAD systems authenticate with `Authorization: Bearer <API key>`.",
        },
        "paths": {
            "/api/v1/session": {
                "post": _op(
                    "Sign in (sets the session cookie)",
                    {"200": ok_object, "401": _ERROR, "422": _ERROR},
                    body="SessionCreate",
                    auth=False,
                ),
                "delete": _op("Sign out", {"204": {"description": "Signed out"}}, auth=False),
            },
            "/api/v1/me": {"get": _op("Who am I, and my organisation", {"200": ok_object})},
            "/api/v1/invites": {
                "post": _op(
                    "Create an invite and send its link",
                    {
                        "201": _json(_INVITE, "Created; `link` is shown this once."),
                        "402": _ERROR,
                        "422": _ERROR,
                        "429": _ERROR,
                        "503": _ERROR,
                    },
                    body="InviteCreate",
                ),
                "get": _op(
                    "The organisation's invites, newest first",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": _INVITE},
                                    "last_event_id": {"type": "integer"},
                                },
                            },
                            "Invites",
                        )
                    },
                    parameters=[
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {"name": "before", "in": "query", "schema": {"type": "string"}},
                    ],
                ),
            },
            "/api/v1/invites/{invite_id}": {
                "get": _op(
                    "One invite",
                    {"200": _json(_INVITE, "The invite"), "404": _ERROR},
                    parameters=[_INVITE_ID],
                )
            },
            "/api/v1/invites/{invite_id}/end": {
                "post": _op(
                    "End the invite: its link dies at once",
                    {"200": _json(_INVITE, "The ended invite"), "404": _ERROR},
                    parameters=[_INVITE_ID],
                )
            },
            "/api/v1/invites/{invite_id}/resend": {
                "post": _op(
                    "Send a new link by SMS (the previous link stops working)",
                    {
                        "201": _json(_INVITE, "The invite, with its new link"),
                        "404": _ERROR,
                        "410": _ERROR,
                        "429": _ERROR,
                        "503": _ERROR,
                    },
                    parameters=[_INVITE_ID],
                )
            },
            "/api/v1/sms/callbacks/{provider}/{message_id}/{secret}": {
                method: _op(
                    "A provider's delivery report for one message (URL given to the provider)",
                    {"204": {"description": "Accepted"}, "403": _ERROR},
                    auth=False,
                    parameters=[
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                        for name in ("provider", "message_id", "secret")
                    ],
                )
                for method in ("get", "post")
            },
            "/api/v1/sms/callbacks/{provider}": {
                method: _op(
                    "A provider's delivery report, at an account-wide URL (docs/sms.md)",
                    {"204": {"description": "Accepted"}, "403": _ERROR},
                    auth=False,
                    parameters=[
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
                for method in ("get", "post")
            },
            "/api/v1/invites/{invite_id}/legal-hold": {
                "post": _op(
                    "Set or lift a legal hold: held media outlives its retention (admins)",
                    {"200": _json(_INVITE, "The invite"), "403": _ERROR, "404": _ERROR},
                    body="LegalHold",
                    parameters=[_INVITE_ID],
                )
            },
            "/api/v1/invites/{invite_id}/media": {
                "get": _op(
                    "The invite's pictures, newest first",
                    {"200": _MEDIA_LIST, "404": _ERROR},
                    parameters=[_INVITE_ID, *_PAGING],
                )
            },
            "/api/v1/media": {
                "get": _op(
                    "The organisation's pictures across invites, newest first",
                    {"200": _MEDIA_LIST},
                    parameters=_PAGING,
                )
            },
            "/api/v1/media/{media_id}": {
                "get": _op(
                    "The stored picture (each viewer's first view or download is audited)",
                    {"200": _JPEG, "404": _ERROR, "410": _ERROR},
                    parameters=[
                        _MEDIA_ID,
                        {"name": "download", "in": "query", "schema": {"enum": ["1"]}},
                    ],
                )
            },
            "/api/v1/media/{media_id}/thumbnail": {
                "get": _op(
                    "A thumbnail of at most 320 px (not audited as a view)",
                    {"200": _JPEG, "404": _ERROR, "410": _ERROR},
                    parameters=[_MEDIA_ID],
                )
            },
            "/api/v1/caller/media": {
                "post": {
                    "summary": "The caller sends a picture; answered once durably stored",
                    "security": [],
                    "parameters": [
                        _LINK,
                        _DEVICE,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{8,128}$"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {"$ref": "#/components/schemas/PictureUpload"}
                            }
                        },
                    },
                    "responses": {
                        "201": _json(
                            {
                                "type": "object",
                                "properties": {"media": {"$ref": "#/components/schemas/Media"}},
                            },
                            "Stored (or the replay of a stored retry)",
                        ),
                        **{
                            code: _ERROR
                            for code in (
                                "400",
                                "401",
                                "408",
                                "409",
                                "410",
                                "413",
                                "415",
                                "422",
                                "429",
                            )
                        },
                    },
                }
            },
            "/api/v1/events": {
                "get": _op(
                    "Live feed (Server-Sent Events); resumes from Last-Event-ID",
                    {"200": {"description": "text/event-stream of events"}, "429": _ERROR},
                    parameters=[
                        {"name": "after", "in": "query", "schema": {"type": "integer"}},
                        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                    ],
                )
            },
            "/api/v1/caller/open": {
                "post": _op(
                    "The caller's page presents its link token (header X-ShowMe-Link)",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "invite": {"type": "object"},
                                    "organisation": {"type": "object"},
                                    "device": {"type": "string", "enum": ["holder", "waiting"]},
                                    "limits": {
                                        "type": "object",
                                        "properties": {"max_upload_bytes": {"type": "integer"}},
                                    },
                                },
                            },
                            "The link is open; `device` says whether this phone holds it",
                        ),
                        "401": _ERROR,
                        "410": _ERROR,
                    },
                    auth=False,
                    parameters=[_LINK, _DEVICE],
                )
            },
            "/api/v1/outbox": {
                "get": _op(
                    "SMS kept by the built-in outbox provider, newest first, with their links",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": {"type": "object"}}
                                },
                            },
                            "Messages of the caller's organisation kept in this instance's memory",
                        )
                    },
                )
            },
            "/api/v1/console/extras": {
                "get": _op("Plugin scripts for the console", {"200": _EXTRAS}, auth=False)
            },
            "/api/v1/caller/extras": {
                "get": _op("Plugin scripts for the caller page", {"200": _EXTRAS}, auth=False)
            },
            "/api/v1/openapi.json": {"get": _op("This document", {"200": ok_object}, auth=False)},
        },
        "components": {
            "schemas": _schemas(),
            "responses": {"Error": _json({"$ref": "#/components/schemas/Error"}, "An error")},
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "showme_session"},
            },
        },
    }


async def openapi_document(_request: Request) -> Response:
    return JSONResponse(build_document())
