"""The errors of the OpenAPI document: every error code with its status, and the responses an
operation lists for the codes it can answer (one response per status, naming its codes).

A client generated from the document learns each status an operation can give; the codes in a
response's description are the ones worth a branch in its code (``docs/api.md``, "Errors").
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER = {"$ref": "#/components/headers/RetryAfter"}

# Every code the API answers with, by status (the codes are in ``showme_core``'s errors).
ERROR_STATUS: dict[str, int] = {
    "bad_request": 400,
    "not_json": 400,
    "bad_upload": 400,
    "host_not_allowed": 400,
    "not_authenticated": 401,
    "bad_api_key": 401,
    "bad_credentials": 401,
    "invalid_link": 401,
    "link_replaced": 401,
    "insufficient_credits": 402,
    "origin_refused": 403,
    "missing_scope": 403,
    "admin_only": 403,
    "callback_refused": 403,
    "not_found": 404,
    "invite_not_found": 404,
    "media_not_found": 404,
    "incident_not_found": 404,
    "method_not_allowed": 405,
    "request_too_slow": 408,
    "idempotency_conflict": 409,
    "already_opened": 409,
    "another_device": 409,
    "link_expired": 410,
    "link_ended": 410,
    "media_purged": 410,
    "payload_too_large": 413,
    "picture_too_large": 413,
    "picture_format_not_allowed": 415,
    "invalid_input": 422,
    "invalid_phone": 422,
    "country_not_allowed": 422,
    "unsupported_language": 422,
    "picture_too_many_pixels": 422,
    "picture_unreadable": 422,
    "picture_polyglot": 422,
    "invite_refused": 422,
    "picture_refused": 422,
    "rate_limited": 429,
    "too_many_uploads": 429,
    "too_many_feeds": 429,
    "internal_error": 500,
    "public_url_not_set": 503,
}

# The groups most operations share.
CREDENTIALS = ("not_authenticated", "bad_api_key", "missing_scope")
# A change made with the session cookie must come from the service's own pages.
CHANGE = (*CREDENTIALS, "origin_refused")
# A JSON request body: its type, size, pace and content.
JSON_BODY = ("not_json", "payload_too_large", "request_too_slow", "invalid_input")
LINK = ("invalid_link", "link_replaced", "link_expired", "link_ended")

# What any request may meet, whatever its route: listed once, as each operation's ``default``.
ANY_ROUTE = {
    "description": "Any other failure, on any route: `host_not_allowed` (400, a Host name this "
    "service does not serve), `method_not_allowed` (405), `internal_error` (500, logged with "
    "the `request_id`).",
    "content": {"application/json": {"schema": ERROR_SCHEMA}},
}


def error_responses(codes: Iterable[str]) -> dict[str, Any]:
    """The responses for ``codes``: one per status, its description naming the codes, and a
    ``Retry-After`` header wherever the status is 429."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        names = by_status.setdefault(ERROR_STATUS[code], [])
        if code not in names:
            names.append(code)
    responses: dict[str, Any] = {}
    for status, names in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": f"{HTTPStatus(status).phrase}: "
            + ", ".join(f"`{name}`" for name in names),
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            response["headers"] = {"Retry-After": RETRY_AFTER}
        if status == HTTPStatus.REQUEST_TIMEOUT:
            response["headers"] = {"Connection": {"$ref": "#/components/headers/ConnectionClose"}}
        responses[str(status)] = response
    responses["default"] = ANY_ROUTE
    return responses


def components() -> dict[str, Any]:
    """The ``Error`` schema and the headers error responses carry."""
    return {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message", "request_id"],
                        "properties": {
                            "code": {
                                "type": "string",
                                "description": "Stable, for machines: branch on this.",
                            },
                            "message": {
                                "type": "string",
                                "description": "Plain words fit to show a dispatcher or a caller.",
                            },
                            "request_id": {
                                "type": ["string", "null"],
                                "description": "The `X-Request-ID` of the answer, for the logs.",
                            },
                            "fields": {
                                "type": "array",
                                "description": "`invalid_input` and its kin: each problem.",
                                "items": {"$ref": "#/components/schemas/FieldProblem"},
                            },
                            "limit": {
                                "type": "integer",
                                "description": "`too_many_feeds`: the limit reached.",
                            },
                            "max_bytes": {
                                "type": "integer",
                                "description": "`picture_too_large`: the most accepted.",
                            },
                        },
                    }
                },
            },
            "FieldProblem": {
                "type": "object",
                "required": ["field", "problem"],
                "properties": {
                    "field": {
                        "type": "string",
                        "description": "The field (dotted path) or query parameter at fault.",
                    },
                    "in": {"type": "string", "enum": ["query"]},
                    "problem": {"type": "string"},
                },
            },
        },
        "headers": {
            "RetryAfter": {
                "description": "Seconds after which the same request may succeed.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            },
            "ConnectionClose": {
                "description": "The rest of the body was not read: the connection ends.",
                "schema": {"type": "string", "const": "close"},
            },
        },
    }
