"""Dispatcher sign-in and the ``/me`` summary the console starts from."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core import audit
from showme_core.accounts import authenticate as check_password
from showme_core.auth import SESSION_COOKIE
from showme_core.errors import NotAuthenticated
from showme_core.organisations import get_organisation
from showme_core.web.auth import check_origin, require_principal, showme_of
from showme_core.web.schemas import SessionCreate, parse_body


async def create_session(request: Request) -> Response:
    check_origin(request)
    body = await parse_body(request, SessionCreate)
    showme = showme_of(request)
    try:
        async with showme.db.read() as db:
            user = await check_password(db, showme.passwords, body.email, body.password)
    except NotAuthenticated:
        async with showme.transaction() as tx:
            await audit.record(
                tx.conn, organisation_id=None, actor="anonymous", action="session.refused"
            )
        raise
    async with showme.transaction() as tx:
        await audit.record(
            tx.conn,
            organisation_id=user.organisation_id,
            actor=f"user:{user.id}",
            action="session.create",
        )
        org = await get_organisation(tx.conn, user.organisation_id)
    response = JSONResponse({"user": user.to_json(), "organisation": org.to_json()})
    response.set_cookie(
        SESSION_COOKIE,
        showme.cookies.issue(user.id),
        max_age=showme.settings.session_max_age_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def delete_session(request: Request) -> Response:
    check_origin(request)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: Request) -> Response:
    principal = await require_principal(request, "invites:read")
    showme = showme_of(request)
    async with showme.db.read() as db:
        org = await get_organisation(db, principal.organisation_id)
    return JSONResponse(
        {
            "user": principal.user.to_json() if principal.user else None,
            "api_key": principal.actor if principal.user is None else None,
            "organisation": org.to_json(),
        },
        headers={"Cache-Control": "no-store"},
    )
