"""``/api/v1/incidents/{incident_id}``: what ShowMe knows of a CAD incident.

Incident ids are the CAD's free text (up to 100 characters) and may contain ``/``: in the path
they are percent-encoded (``INC/42`` is ``INC%2F42``). Starlette decodes the path before it routes,
so the id is read from the raw path, where an encoded slash is still told from a separator.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core import incidents
from showme_core.auth import Principal
from showme_core.errors import Forbidden, InvalidInput, NotFound
from showme_core.web.auth import require_principal, showme_of

PREFIX = "/api/v1/incidents/"
NO_STORE = {"Cache-Control": "no-store"}


def incident_id_of(request: Request, suffix: str = "") -> str:
    """The incident id in the request's raw path, before ``suffix`` (such as ``/eido``)."""
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    rest = raw.split("?", 1)[0].removeprefix(PREFIX)
    if suffix:
        rest = rest.removesuffix(suffix)
    if "/" in rest:
        raise NotFound(
            "No such route. Percent-encode the incident id ('/' as %2F).", code="not_found"
        )
    incident_id = unquote(rest).strip()
    if not incident_id or len(incident_id) > 100:
        raise InvalidInput("incident_id must be 1 to 100 characters")
    return incident_id


def _is_suffixed(request: Request, suffix: str) -> bool:
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    return raw.split("?", 1)[0].endswith(suffix)


async def _reader(request: Request) -> Principal:
    """An incident shows invites and pictures: both scopes are needed."""
    principal = await require_principal(request, "invites:read")
    if not principal.allows("media:read"):
        raise Forbidden("This API key lacks the scope 'media:read'.", code="missing_scope")
    return principal


async def get_incident(request: Request) -> Response:
    """The incident's invites, pictures, stream outcomes and session events, newest first."""
    principal = await _reader(request)
    incident_id = incident_id_of(request)
    async with showme_of(request).db.read() as db:
        found = await incidents.get_incident(db, principal.organisation_id, incident_id)
    return JSONResponse(found.to_json(), headers=NO_STORE)


async def incident_eido(request: Request) -> Response:
    """The incident as a NENA EIDO (``docs/eido.md``)."""
    if not _is_suffixed(request, "/eido"):
        # ".../INC%2Feido": an incident whose id ends in "/eido", not its EIDO.
        return await get_incident(request)
    principal = await _reader(request)
    incident_id = incident_id_of(request, "/eido")
    showme = showme_of(request)
    async with showme.db.read() as db:
        found = await incidents.get_incident(db, principal.organisation_id, incident_id)
    from showme_core.eido import eido_for

    # Hundreds of PIDF-LO documents for a large incident: built off the event loop.
    document = await showme.run_cpu(eido_for, found, showme.public_base())
    return JSONResponse(document, headers=NO_STORE)
