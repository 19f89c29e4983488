"""Request bodies, validated with pydantic; their JSON schemas feed the OpenAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.requests import Request

from showme_core.errors import InvalidInput, ShowMeError

MAX_JSON_BYTES = 64 * 1024

M = TypeVar("M", bound=BaseModel)


class InviteCreate(BaseModel):
    """Ask a caller to show the scene."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(
        max_length=40,
        description="The caller's number; without '+' it is read in the organisation's region.",
        examples=["+32470123456", "0470 12 34 56"],
    )
    incident_id: str | None = Field(default=None, max_length=100, description="CAD incident id.")
    language: str | None = Field(
        default=None, description="SMS and caller-page language; default: the organisation's."
    )
    send_sms: bool = Field(
        default=True, description="false: only return the link, for PSAPs that send it themselves."
    )


class SessionCreate(BaseModel):
    """Sign in with a local account."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class LegalHold(BaseModel):
    """Keep an invite's media past its retention period, or stop keeping it."""

    model_config = ConfigDict(extra="forbid")

    hold: bool
    reason: str | None = Field(default=None, max_length=500, description="Kept in the audit log.")


class PictureFields(BaseModel):
    """The form fields the caller page sends beside a picture (docs/media.md)."""

    model_config = ConfigDict(extra="forbid")

    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = Field(default=None, ge=0, le=1_000_000, allow_inf_nan=False)
    captured_at: AwareDatetime | None = None
    kind: Literal["picture", "still", "snapshot"] = "picture"

    @field_validator("captured_at")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            utc = value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("not a plausible capture time") from exc
        if not 1900 <= utc.year <= 2100:
            raise ValueError("not a plausible capture time")
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> PictureFields:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("send lat and lon together")
        return self


def validation_problem(exc: ValidationError) -> InvalidInput:
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return InvalidInput(f"Invalid request: {summary}", fields=problems)


def paging(request: Request, default: int, maximum: int) -> tuple[int, datetime | None]:
    """``limit`` and ``before`` of a newest-first list; a time without a zone is read as UTC."""
    try:
        limit = int(request.query_params.get("limit", str(default)))
        before_raw = request.query_params.get("before")
        before = datetime.fromisoformat(before_raw.replace("Z", "+00:00")) if before_raw else None
    except ValueError as exc:
        raise InvalidInput("limit must be a number and before an ISO 8601 time") from exc
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}")
    if before is not None:
        # UTC always: SQLite compares stored times as text without their offset.
        before = before.replace(tzinfo=UTC) if before.tzinfo is None else before.astimezone(UTC)
    return limit, before


def incident_filter(request: Request) -> str | None:
    """The ``incident_id`` a list is filtered on, as invites carry it (trimmed, at most 100)."""
    raw = request.query_params.get("incident_id")
    if raw is None:
        return None
    value = raw.strip()
    if not value or len(value) > 100:
        raise InvalidInput("incident_id must be 1 to 100 characters")
    return value


class PayloadTooLarge(ShowMeError):
    status = 413
    code = "payload_too_large"


async def parse_body(request: Request, model: type[M]) -> M:
    """Read a JSON body of bounded size into ``model``, or answer with a clear 4xx."""
    if "application/json" not in request.headers.get("content-type", ""):
        raise ShowMeError("Send a JSON body (Content-Type: application/json).", code="not_json")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BYTES:
            raise PayloadTooLarge(f"The body is larger than {MAX_JSON_BYTES} bytes.")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        raise ShowMeError("The body is not valid JSON.", code="not_json") from exc
    text = raw.decode("utf-8", "replace")
    if "\\u0000" in text or "\x00" in text:
        raise InvalidInput("Text fields must not contain NUL characters.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from exc
