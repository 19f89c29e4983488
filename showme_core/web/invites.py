"""``/api/v1/invites``: create, list, read and end invites."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core import invites
from showme_core.events import last_event_id
from showme_core.web.auth import require_principal, showme_of
from showme_core.web.schemas import InviteCreate, incident_filter, paging, parse_body

NO_STORE = {"Cache-Control": "no-store"}


async def create_invite(request: Request) -> Response:
    principal = await require_principal(request, "invites:write")
    body = await parse_body(request, InviteCreate)
    answer = await invites.create_invite_answer(
        showme_of(request),
        principal,
        phone=body.phone,
        incident_id=body.incident_id,
        language=body.language,
        send_sms=body.send_sms,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return _answered(answer)


def _answered(answer: invites.Answer) -> Response:
    """The first answer, or its replay: the link is shown here, and only here."""
    headers = {**NO_STORE, "Location": f"/api/v1/invites/{answer.body['id']}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


async def list_invites(request: Request) -> Response:
    principal = await require_principal(request, "invites:read")
    limit, before = paging(request, default=50, maximum=200)
    incident_id = incident_filter(request)
    async with showme_of(request).db.read() as db:
        # Read first: a feed resumed from here replays whatever changes after the list was taken.
        last_id = await last_event_id(db, principal.organisation_id)
        found = await invites.list_invites(
            db, principal.organisation_id, limit, before, incident_id=incident_id
        )
        sms_rows = await invites.latest_sms(db, [i.id for i in found])
    return JSONResponse(
        {
            "items": [invite.to_json(sms_rows.get(invite.id)) for invite in found],
            "last_event_id": last_id,
        },
        headers=NO_STORE,
    )


async def get_invite(request: Request) -> Response:
    principal = await require_principal(request, "invites:read")
    async with showme_of(request).db.read() as db:
        invite = await invites.get_invite(
            db, principal.organisation_id, request.path_params["invite_id"]
        )
        sms_rows = await invites.latest_sms(db, [invite.id])
    return JSONResponse(invite.to_json(sms_rows.get(invite.id)), headers=NO_STORE)


async def end_invite(request: Request) -> Response:
    principal = await require_principal(request, "invites:write")
    showme = showme_of(request)
    invite = await invites.end_invite(showme, principal, request.path_params["invite_id"])
    async with showme.db.read() as db:
        sms_rows = await invites.latest_sms(db, [invite.id])
    return JSONResponse(invite.to_json(sms_rows.get(invite.id)), headers=NO_STORE)


async def resend_invite(request: Request) -> Response:
    """Send the link again, as a new link (the old one stops working): after an unclear or
    failed SMS, one click for the dispatcher."""
    principal = await require_principal(request, "invites:write")
    answer = await invites.resend_invite_answer(
        showme_of(request),
        principal,
        request.path_params["invite_id"],
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return _answered(answer)
