"""One JSON error shape for every failure: ``{"error": {"code", "message", "request_id", ...}}``."""

from __future__ import annotations

from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from showme_core.errors import ClientGone, ShowMeError

log = structlog.get_logger("showme.http")

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    request: Request, status: int, code: str, message: str, **details: Any
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "request_id": request.scope.get("state", {}).get("request_id"),
            **details,
        }
    }
    headers = {"Cache-Control": "no-store"}
    if status == 401 and request.headers.get("authorization", "").lower().startswith("bearer"):
        headers["WWW-Authenticate"] = 'Bearer realm="showme"'
    return JSONResponse(body, status_code=status, headers=headers)


async def _showme_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ShowMeError)
    response = error_response(request, exc.status, exc.code, exc.message, **exc.details)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 408:
        # The rest of the body is not read: the connection cannot carry another request (the
        # server ends it with a lingering close, see web/server.py).
        response.headers["Connection"] = "close"
    return response


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up mid-request (a phone losing its network during an upload): that is
    what the log says, with 499 as proxies write it, and no answer is sent to nobody."""
    log.info("client disconnected", path=request.url.path)
    gone = ClientGone("The client disconnected before its request was read.")
    return error_response(request, gone.status, gone.code, gone.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    response = error_response(request, exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return error_response(
        request, 500, "internal_error", "Something went wrong on the server; it has been logged."
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ClientDisconnect: _client_gone,
    ClientGone: _client_gone,
    ShowMeError: _showme_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
