"""The OpenAPI 3.1 document of ``/api/v1``, written by hand from the routes' code.

A test keeps it in step with the route table and generates a client from it; the query strings
each route accepts are read from it (:mod:`.query`), so what is documented is what is accepted.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core import __version__
from showme_core.web import openapi_errors
from showme_core.web.openapi_errors import (
    CHANGE,
    CREDENTIALS,
    JSON_BODY,
    LINK,
    error_responses,
)
from showme_core.web.openapi_schemas import ref, schemas

# The most items a page of each list gives, and how many without `limit` (the routes' paging).
INVITE_PAGE = (50, 200)
MEDIA_PAGE = (100, 500)
MAX_INCIDENT_ID = 100

TAGS = [
    {"name": "invites", "description": "Ask a caller to show the scene; end or resend links."},
    {"name": "media", "description": "The pictures callers sent, and their bytes."},
    {"name": "incidents", "description": "What ShowMe knows of one CAD incident."},
    {"name": "events", "description": "The organisation's live event feed (Server-Sent Events)."},
    {"name": "caller", "description": "What the caller's page calls, with the link's token."},
    {"name": "session", "description": "Dispatcher sign-in, and who is asking."},
    {"name": "sms", "description": "SMS providers' delivery reports; the built-in outbox."},
    {"name": "console", "description": "What the dispatcher console loads."},
    {"name": "meta", "description": "This document."},
]


def _json(schema: dict[str, Any], description: str, **headers: Any) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", **schema}}


def _op(
    operation_id: str,
    tag: str,
    summary: str,
    answer: dict[str, Any],
    errors: tuple[str, ...] = (),
    *,
    scope: str | None = None,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """One operation: ``answer`` maps its success statuses to responses, ``errors`` names every
    error code it can give; ``scope`` is the API-key scope it needs (``None``: anyone)."""
    op: dict[str, Any] = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    if scope is None:
        op["security"] = []
    else:
        # A signed-in user holds every scope but `media:hold`, which takes an admin.
        op["security"] = [
            {"apiKey": [scope]},
            {"session": ["admin"] if scope == "media:hold" else []},
        ]
    if not any(free_form(p) for p in parameters or ()):
        errors = (*errors, "invalid_input")  # an unknown query parameter, on any route
    op["responses"] = {**answer, **error_responses(errors)}
    return op


def free_form(parameter: dict[str, Any]) -> bool:
    """A query parameter that takes any name (an object, exploded as a form)."""
    return (
        parameter.get("in") == "query"
        and parameter.get("schema", {}).get("type") == "object"
        and parameter.get("style", "form") == "form"
        and parameter.get("explode", True)
    )


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _paging(page: tuple[int, int], *, incident: bool) -> list[dict[str, Any]]:
    default, maximum = page
    parameters: list[dict[str, Any]] = [
        {
            "name": "limit",
            "in": "query",
            "description": "How many, newest first.",
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        },
        {
            "name": "before",
            "in": "query",
            "description": "Only those created before this time (without an offset: UTC); "
            "the `created_at` of a page's last item gives the next page.",
            "schema": {"type": "string", "format": "date-time"},
        },
    ]
    if incident:
        parameters.append(
            {
                "name": "incident_id",
                "in": "query",
                "description": "Only those of this CAD incident (as given at creation).",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_INCIDENT_ID},
            }
        )
    return parameters


_INVITE_ID = _path("invite_id")
_MEDIA_ID = _path("media_id")
_LINK = {
    "name": "X-ShowMe-Link",
    "in": "header",
    "required": True,
    "description": "The token of the caller's link (what follows `#` in `/c/#<token>`).",
    "schema": {"type": "string"},
}
# The phone's own id: one phone holds a link, others wait until the dispatcher allows them.
_DEVICE = {
    "name": "X-ShowMe-Device",
    "in": "header",
    "description": "A random id the caller's page keeps; the first phone to open holds the link.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
}


def _idempotency_key(what: str) -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "description": f"One per {what}: a retry with the same key and content answers the first "
        "`201` again (with `Idempotent-Replayed: true`), and nothing is done twice; other "
        "content answers `409 idempotency_conflict`.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{8,128}$"},
    }


_REPLAYED = _header("`true` when this is the first answer, replayed.", enum=["true"])
_JPEG = {
    "image/jpeg": {
        "schema": {"type": "string", "format": "binary", "contentMediaType": "image/jpeg"}
    }
}
_ETAG = _header("The picture's SHA-256, quoted (thumbnails: a part of it).")
# Providers send their reports as they like (Vonage as a GET query): any query parameter goes.
_ANY_QUERY = {
    "name": "report",
    "in": "query",
    "description": "Whatever the provider sends; its plugin reads it (`docs/sms.md`).",
    "style": "form",
    "explode": True,
    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
}
_NO_CONTENT = {"204": {"description": "Accepted (a genuine repeat too)."}}


def _invites() -> dict[str, Any]:
    invite = _json(ref("Invite"), "The invite.")
    return {
        "/api/v1/invites": {
            "post": _op(
                "create_invite",
                "invites",
                "Create an invite and send its link",
                {
                    "201": _json(
                        ref("CreatedInvite"),
                        "Created; `link` is shown this once (and to a retry's replay).",
                        Location=_header("`/api/v1/invites/<id>`"),
                        **{"Idempotent-Replayed": _REPLAYED},
                    )
                },
                (
                    *CHANGE,
                    *JSON_BODY,
                    "idempotency_conflict",
                    "invalid_phone",
                    "country_not_allowed",
                    "unsupported_language",
                    "invite_refused",
                    "insufficient_credits",
                    "rate_limited",
                    "public_url_not_set",
                ),
                scope="invites:write",
                body=_json_body("InviteCreate"),
                parameters=[_idempotency_key("invite")],
                description="With `send_sms: false` nothing is sent and no credit is used: the "
                "answer's `link` is for PSAPs that send it themselves. Rate-limited per sender "
                "and per organisation (`429 rate_limited`, `Retry-After`).",
            ),
            "get": _op(
                "list_invites",
                "invites",
                "The organisation's invites, newest first",
                {"200": _json(ref("InviteList"), "A page of invites, and the feed's position.")},
                (*CREDENTIALS, "invalid_input"),
                scope="invites:read",
                parameters=_paging(INVITE_PAGE, incident=True),
            ),
        },
        "/api/v1/invites/{invite_id}": {
            "get": _op(
                "get_invite",
                "invites",
                "One invite",
                {"200": invite},
                (*CREDENTIALS, "invite_not_found"),
                scope="invites:read",
                parameters=[_INVITE_ID],
            )
        },
        "/api/v1/invites/{invite_id}/end": {
            "post": _op(
                "end_invite",
                "invites",
                "End the invite: its link dies at once (ending twice is harmless)",
                {"200": _json(ref("Invite"), "The ended invite.")},
                (*CHANGE, "invite_not_found"),
                scope="invites:write",
                parameters=[_INVITE_ID],
            )
        },
        "/api/v1/invites/{invite_id}/resend": {
            "post": _op(
                "resend_invite",
                "invites",
                "Send a new link by SMS (the previous link stops working)",
                {
                    "201": _json(
                        ref("CreatedInvite"),
                        "The invite, with its new link.",
                        Location=_header("`/api/v1/invites/<id>`"),
                        **{"Idempotent-Replayed": _REPLAYED},
                    )
                },
                (
                    *CHANGE,
                    "idempotency_conflict",
                    "invite_not_found",
                    "already_opened",
                    "link_expired",
                    "link_ended",
                    "country_not_allowed",
                    "insufficient_credits",
                    "rate_limited",
                    "public_url_not_set",
                ),
                scope="invites:write",
                parameters=[_INVITE_ID, _idempotency_key("resend")],
                description="For a live invite not yet opened (`409 already_opened` otherwise: "
                "the caller's link still works). Charged and rate-limited like the first SMS.",
            )
        },
        "/api/v1/invites/{invite_id}/legal-hold": {
            "post": _op(
                "set_legal_hold",
                "invites",
                "Set or lift a legal hold: held media outlives its retention (admins)",
                {"200": invite},
                (*CHANGE, "admin_only", *JSON_BODY, "invite_not_found"),
                scope="media:hold",
                body=_json_body("LegalHold"),
                parameters=[_INVITE_ID],
            )
        },
    }


def _media() -> dict[str, Any]:
    listing = _json(ref("MediaList"), "Pictures, newest first, and the feed's position.")
    stored = (*CREDENTIALS, "media_not_found", "media_purged")
    return {
        "/api/v1/invites/{invite_id}/media": {
            "get": _op(
                "list_invite_media",
                "media",
                "The invite's pictures, newest first",
                {"200": listing},
                (*CREDENTIALS, "invite_not_found", "invalid_input"),
                scope="media:read",
                parameters=[_INVITE_ID, *_paging(MEDIA_PAGE, incident=False)],
            )
        },
        "/api/v1/media": {
            "get": _op(
                "list_media",
                "media",
                "The organisation's pictures across invites, newest first",
                {"200": listing},
                (*CREDENTIALS, "invalid_input"),
                scope="media:read",
                parameters=_paging(MEDIA_PAGE, incident=True),
            )
        },
        "/api/v1/media/{media_id}": {
            "get": _op(
                "download_media",
                "media",
                "The stored picture (each viewer's first view or download is audited)",
                {
                    "200": {
                        "description": "The JPEG, whose SHA-256 is the media's `sha256`.",
                        "headers": {
                            "ETag": _ETAG,
                            "Content-Disposition": _header("With `download=1`: an attachment."),
                        },
                        "content": _JPEG,
                    }
                },
                stored,
                scope="media:read",
                parameters=[
                    _MEDIA_ID,
                    {
                        "name": "download",
                        "in": "query",
                        "description": "`1`: as an attachment named `showme-<id>.jpg`.",
                        "schema": {"type": "string", "enum": ["1"]},
                    },
                ],
            )
        },
        "/api/v1/media/{media_id}/thumbnail": {
            "get": _op(
                "download_thumbnail",
                "media",
                "A thumbnail of at most 320 px (not audited as a view)",
                {"200": {"description": "The JPEG.", "headers": {"ETag": _ETAG}, "content": _JPEG}},
                stored,
                scope="media:read",
                parameters=[_MEDIA_ID],
            )
        },
    }


def _incidents() -> dict[str, Any]:
    incident_id = {
        **_path("incident_id"),
        "description": "The CAD's id as given at creation, percent-encoded (`/` as `%2F`).",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_INCIDENT_ID},
    }
    # An incident shows invites and pictures: an API key needs both scopes.
    errors = (*CREDENTIALS, "incident_not_found", "not_found", "invalid_input")
    both = "Needs the scopes `invites:read` and `media:read`."
    return {
        "/api/v1/incidents/{incident_id}": {
            "get": _op(
                "get_incident",
                "incidents",
                "The incident's invites, pictures, stream outcomes and events, newest first",
                {"200": _json(ref("Incident"), "The incident.")},
                errors,
                scope="invites:read",
                parameters=[incident_id],
                description=both,
            )
        },
        "/api/v1/incidents/{incident_id}/eido": {
            "get": _op(
                "get_incident_eido",
                "incidents",
                "The incident as a NENA EIDO document",
                {"200": _json(ref("Eido"), "The EIDO (`docs/eido.md`).")},
                (*errors, "public_url_not_set"),
                scope="invites:read",
                parameters=[incident_id],
                description=both,
            )
        },
    }


_FEED = {
    "description": "Frames `id: <n>` and `data: <Event as JSON>`, in id order. Comments (`:`) "
    "keep an idle feed alive; `event: ended` (with `data: {}`) closes a feed whose "
    "credentials no longer hold. `x-itemSchema` is the schema of each frame's `data` (OpenAPI "
    "3.2's `itemSchema`).",
    "content": {
        "text/event-stream": {
            "schema": {"type": "string"},
            "x-itemSchema": ref("Event"),
        }
    },
}


def _caller_and_feed() -> dict[str, Any]:
    return {
        "/api/v1/events": {
            "get": _op(
                "follow_events",
                "events",
                "Live feed (Server-Sent Events); resumes after Last-Event-ID or `after`",
                {"200": _FEED},
                (*CREDENTIALS, "invalid_input", "too_many_feeds"),
                scope="events:read",
                parameters=[
                    {
                        "name": "after",
                        "in": "query",
                        "description": "Start after this event id (an invite or media list's "
                        "`last_event_id`); without it or `Last-Event-ID`, the feed starts now.",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "description": "Sent by SSE clients on reconnect; wins over `after`.",
                        "schema": {"type": "string"},
                    },
                ],
                description="At most 8 feeds per API key or user and 200 per organisation, "
                "per instance (`429 too_many_feeds`, `Retry-After`). Credentials are checked "
                "again every 10 s.",
            )
        },
        "/api/v1/caller/open": {
            "post": _op(
                "open_link",
                "caller",
                "The caller's page presents its link token: the invite is now opened",
                {"200": _json(ref("OpenedLink"), "The link is open.")},
                LINK,
                parameters=[_LINK, _DEVICE],
            )
        },
        "/api/v1/caller/media": {
            "post": _op(
                "upload_picture",
                "caller",
                "The caller sends a picture; answered once durably stored",
                {
                    "201": _json(
                        ref("UploadedMedia"),
                        "Stored (or the replay of a stored retry).",
                        Location=_header("`/api/v1/media/<id>`"),
                        **{"Idempotent-Replayed": _REPLAYED},
                    )
                },
                (
                    "bad_upload",
                    *LINK,
                    "request_too_slow",
                    "idempotency_conflict",
                    "another_device",
                    "media_purged",
                    "picture_too_large",
                    "picture_format_not_allowed",
                    "invalid_input",
                    "picture_too_many_pixels",
                    "picture_unreadable",
                    "picture_polyglot",
                    "picture_refused",
                    "too_many_uploads",
                ),
                parameters=[_LINK, _DEVICE, _idempotency_key("picture")],
                body={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": ref("PictureUpload"),
                            "encoding": {
                                "picture": {
                                    "contentType": "image/jpeg, image/png, image/webp, "
                                    "image/heic, image/heif, application/octet-stream"
                                }
                            },
                        }
                    },
                },
                description="`docs/media.md` is the whole contract.",
            )
        },
        "/api/v1/caller/extras": {
            "get": _op(
                "get_caller_extras",
                "caller",
                "Plugin scripts for the caller page",
                {"200": _json(ref("PageExtras"), "Same-origin URLs.")},
            )
        },
    }


def _sms_callbacks() -> dict[str, Any]:
    per_message = [_path(name) for name in ("provider", "message_id", "secret")]
    paths: dict[str, Any] = {
        "/api/v1/sms/callbacks/{provider}/{message_id}/{secret}": {},
        "/api/v1/sms/callbacks/{provider}": {},
    }
    for method in ("get", "post"):
        errors: tuple[str, ...] = ("callback_refused", "payload_too_large")
        if method == "post":
            errors = (*errors, "request_too_slow")
        paths["/api/v1/sms/callbacks/{provider}/{message_id}/{secret}"][method] = _op(
            f"receive_message_report_{method}",
            "sms",
            "A provider's delivery report for one message (URL given to the provider)",
            _NO_CONTENT,
            errors,
            parameters=[*per_message, _ANY_QUERY],
        )
        paths["/api/v1/sms/callbacks/{provider}"][method] = _op(
            f"receive_account_report_{method}",
            "sms",
            "A provider's delivery report, at an account-wide URL (docs/sms.md)",
            _NO_CONTENT,
            errors,
            parameters=[_path("provider"), _ANY_QUERY],
        )
    return paths


def _session_and_rest() -> dict[str, Any]:
    return {
        "/api/v1/session": {
            "post": _op(
                "create_session",
                "session",
                "Sign in (sets the session cookie)",
                {"200": _json(ref("Session"), "Signed in; the cookie is set.")},
                ("origin_refused", *JSON_BODY, "bad_credentials"),
                body=_json_body("SessionCreate"),
            ),
            "delete": _op(
                "delete_session",
                "session",
                "Sign out",
                {"204": {"description": "Signed out; the cookie is cleared."}},
                ("origin_refused",),
            ),
        },
        "/api/v1/me": {
            "get": _op(
                "get_me",
                "session",
                "Who am I, and my organisation",
                {"200": _json(ref("Me"), "The user or API key, and its organisation.")},
                CREDENTIALS,
                scope="invites:read",
            )
        },
        "/api/v1/outbox": {
            "get": _op(
                "list_outbox",
                "sms",
                "SMS kept by the built-in outbox provider, newest first, with their links",
                {"200": _json(ref("Outbox"), "This instance's memory: lost on restart.")},
                CREDENTIALS,
                scope="invites:write",
            )
        },
        "/api/v1/console/extras": {
            "get": _op(
                "get_console_extras",
                "console",
                "Plugin scripts for the console",
                {"200": _json(ref("PageExtras"), "Same-origin URLs.")},
            )
        },
        "/api/v1/openapi.json": {
            "get": _op(
                "get_openapi_document",
                "meta",
                "This document",
                {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            )
        },
    }


@cache
def build_document() -> dict[str, Any]:
    """The whole document (built once: it does not depend on settings or plugins)."""
    errors = openapi_errors.components()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ShowMe",
            "version": __version__,
            "description": "Invite a caller to show the scene; follow it live. CAD systems "
            "authenticate with `Authorization: Bearer <API key>`; `docs/api.md` is the guide. "
            "Unknown query parameters are refused (`422 invalid_input`).",
        },
        "tags": TAGS,
        "paths": {
            **_session_and_rest(),
            **_invites(),
            **_media(),
            **_incidents(),
            **_caller_and_feed(),
            **_sms_callbacks(),
        },
        "components": {
            "schemas": {**schemas(), **errors["schemas"]},
            "headers": errors["headers"],
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`smk_...`); the operation's scope is listed.",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "showme_session"},
            },
        },
    }


async def openapi_document(_request: Request) -> Response:
    """``GET /api/v1/openapi.json``."""
    return JSONResponse(build_document())
