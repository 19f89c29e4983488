"""The caller's side of the API. The link token arrives in a header, never in a URL."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core import invites
from showme_core.clock import iso
from showme_core.devices import DEVICE_HEADER
from showme_core.errors import NotAuthenticated
from showme_core.web.auth import showme_of

TOKEN_HEADER = "x-showme-link"  # noqa: S105 - a header name


def link_token(request: Request) -> str:
    token = request.headers.get(TOKEN_HEADER, "").strip()
    if not token:
        raise NotAuthenticated("This link is not valid.", code="invalid_link")
    return token


async def open_link(request: Request) -> Response:
    """The caller's page presents its token (and its device id): the invite is now "opened"."""
    showme = showme_of(request)
    invite, org, holds = await invites.open_invite(
        showme, link_token(request), request.headers.get(DEVICE_HEADER)
    )
    return JSONResponse(
        {
            "invite": {
                "language": invite.language,
                "expires_at": iso(invite.expires_at),
                "status": invite.status().value,
            },
            "organisation": {"name": org.name},
            # "waiting": another phone holds this link; the page says so at once.
            "device": "holder" if holds else "waiting",
            # The page sends an original it cannot read a location from, when it fits.
            "limits": {"max_upload_bytes": showme.settings.max_upload_bytes},
        },
        headers={"Cache-Control": "no-store"},
    )
