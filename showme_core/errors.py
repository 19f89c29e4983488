"""Domain errors: a machine code, a human message and the HTTP status the API answers with."""

from __future__ import annotations

from typing import Any


class ShowMeError(Exception):
    status = 400
    code = "bad_request"
    # Seconds after which a retry may succeed (sent as Retry-After), for refusals under load.
    retry_after: int | None = None

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class InvalidInput(ShowMeError):
    status = 422
    code = "invalid_input"


class NotAuthenticated(ShowMeError):
    status = 401
    code = "not_authenticated"


class Forbidden(ShowMeError):
    status = 403
    code = "forbidden"


class NotFound(ShowMeError):
    status = 404
    code = "not_found"


class Conflict(ShowMeError):
    status = 409
    code = "conflict"


class Gone(ShowMeError):
    status = 410
    code = "gone"


class InsufficientCredits(ShowMeError):
    status = 402
    code = "insufficient_credits"


class NotConfigured(ShowMeError):
    """The service lacks a setting this request needs; the message says which."""

    status = 503
    code = "not_configured"


class TooBusy(ShowMeError):
    """Refused under load; the client may retry after ``retry_after`` seconds."""

    status = 429
    code = "too_many_requests"
    retry_after = 2


class RequestTooSlow(ShowMeError):
    """The request's body did not arrive in time (docs/operations.md, "Limits")."""

    status = 408
    code = "request_too_slow"


class ClientGone(ShowMeError):
    """The client hung up before its request was read; nobody is left to answer (logged as 499,
    as proxies do, never as a server error)."""

    status = 499
    code = "client_disconnected"
