"""Request bodies, validated with pydantic; their JSON schemas feed the OpenAPI document."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
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
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        raise InvalidInput(f"Invalid request: {summary}", fields=problems) from exc
