"""The JSON the adapter's routes accept, validated as the REST API validates its own."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from showme_core.errors import InvalidInput, ShowMeError

MAX_BODY_BYTES = 64 * 1024
M = TypeVar("M", bound=BaseModel)


class BodyTooLarge(ShowMeError):
    status = 413
    code = "payload_too_large"


class EndpointCreate(BaseModel):
    """A new webhook endpoint."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="https URL of the receiver.")
    description: str = Field(default="", max_length=200)
    event_types: list[str] = Field(
        default_factory=lambda: ["*"],
        max_length=50,
        description="Catalogue types, 'prefix.*' or '*'; [] for the EIDO push alone.",
    )
    include_phone: bool = False
    include_locations: bool = False
    push_eido: bool = False
    active: bool = True


class EndpointChange(BaseModel):
    """Changes to an endpoint; what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000)
    description: str | None = Field(default=None, max_length=200)
    event_types: list[str] | None = Field(default=None, max_length=50)
    include_phone: bool | None = None
    include_locations: bool | None = None
    push_eido: bool | None = None
    active: bool | None = None


class Rotation(BaseModel):
    """How long the secrets being replaced keep signing (default: the service's setting)."""

    model_config = ConfigDict(extra="forbid")

    overlap_seconds: float | None = Field(default=None, ge=0, le=7 * 86400)


class ReplaySince(BaseModel):
    """Replay every delivery recorded since a time."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime


class InviteCreate(BaseModel):
    """The REST API's ``POST /api/v1/invites`` body, field for field (a test keeps them equal)."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=40)
    incident_id: str | None = Field(default=None, max_length=100)
    language: str | None = None
    send_sms: bool = True


async def parse(request: Request, model: type[M], *, empty_ok: bool = False) -> M:
    """The request's JSON body as ``model``, or a 4xx that says what is wrong."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The body is larger than {MAX_BODY_BYTES} bytes.")
    if not raw and empty_ok:
        raw = b"{}"
    elif "application/json" not in request.headers.get("content-type", ""):
        raise ShowMeError("Send a JSON body (Content-Type: application/json).", code="not_json")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        raise ShowMeError("The body is not valid JSON.", code="not_json") from None
    if "\\u0000" in raw.decode("utf-8", "replace") or b"\x00" in raw:
        raise InvalidInput("Text fields must not contain NUL characters.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidInput(f"Invalid request: {summary}", fields=problems) from None


def query_time(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time from the query (UTC when it has no zone)."""
    from showme_cad_webhook.times import parse_iso

    value = request.query_params.get(name)
    if not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 time.") from None
