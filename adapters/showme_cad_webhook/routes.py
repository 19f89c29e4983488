"""The adapter's HTTP routes under ``/api/v1/cad-webhook``.

Endpoints and their deliveries are managed by the organisation's administrators, signed in to
ShowMe (a cookie session, with the core's ``Origin`` check on changes); an API key cannot manage
them, so a CAD's key cannot redirect its own organisation's events. The inbound routes let a
CAD that cannot use the REST API create, end and resend invites with an API key holding
``invites:write``, and answer exactly as the REST API does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from showme_cad_webhook.adapter import adapter_of
from showme_cad_webhook.bodies import (
    EndpointChange,
    EndpointCreate,
    InviteCreate,
    ReplaySince,
    Rotation,
    parse,
    query_time,
)
from showme_cad_webhook.const import PREFIX
from showme_cad_webhook.deliveries import parse_state
from showme_core.errors import Forbidden, InvalidInput, NotFound

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.auth import Principal

NO_STORE = {"Cache-Control": "no-store"}
MAX_LIST = 200


def routes(showme: ShowMe) -> list[Route]:
    """Every route of the adapter, bound to ``showme``."""
    adapter = adapter_of(showme)

    async def admin(request: Request) -> Principal:
        principal = await showme.principal(request, "invites:read")
        if principal.user is None or principal.user.role.value != "admin":
            raise Forbidden(
                "Webhook endpoints are managed by an administrator signed in to ShowMe.",
                code="admin_only",
            )
        return principal

    def answer(body: dict[str, Any], status: int = 200) -> Response:
        return JSONResponse(body, status_code=status, headers=NO_STORE)

    async def list_endpoints(request: Request) -> Response:
        principal = await admin(request)
        found = await adapter.endpoints.every(principal.organisation_id)
        now = showme.now()
        return answer({"items": [endpoint.to_json(now) for endpoint in found]})

    async def create_endpoint(request: Request) -> Response:
        principal = await admin(request)
        body = await parse(request, EndpointCreate)
        endpoint, secret = await adapter.endpoints.create(
            principal.organisation_id, **body.model_dump(), actor=principal.actor
        )
        adapter.ensure_sender(endpoint)
        # The secret is in this answer and nowhere else, ever.
        return answer({**endpoint.to_json(showme.now()), "secret": secret}, 201)

    async def get_endpoint(request: Request) -> Response:
        principal = await admin(request)
        endpoint = await adapter.endpoints.get(
            principal.organisation_id, request.path_params["endpoint_id"]
        )
        return answer(endpoint.to_json(showme.now()))

    async def change_endpoint(request: Request) -> Response:
        principal = await admin(request)
        body = await parse(request, EndpointChange)
        changes = body.model_dump(exclude_none=True)
        endpoint = await adapter.endpoints.change(
            principal.organisation_id,
            request.path_params["endpoint_id"],
            actor=principal.actor,
            **changes,
        )
        if endpoint.active:
            adapter.ensure_sender(endpoint)
        return answer(endpoint.to_json(showme.now()))

    async def delete_endpoint(request: Request) -> Response:
        principal = await admin(request)
        await adapter.endpoints.delete(
            principal.organisation_id, request.path_params["endpoint_id"], actor=principal.actor
        )
        return Response(status_code=204, headers=NO_STORE)

    async def rotate_secret(request: Request) -> Response:
        principal = await admin(request)
        body = await parse(request, Rotation, empty_ok=True)
        endpoint, secret = await adapter.endpoints.rotate(
            principal.organisation_id,
            request.path_params["endpoint_id"],
            body.overlap_seconds,
            actor=principal.actor,
        )
        return answer({**endpoint.to_json(showme.now()), "secret": secret})

    async def list_deliveries(request: Request) -> Response:
        principal = await admin(request)
        endpoint = await adapter.endpoints.get(
            principal.organisation_id, request.path_params["endpoint_id"]
        )
        try:
            limit = min(MAX_LIST, max(1, int(request.query_params.get("limit", "50"))))
            state = parse_state(request.query_params.get("state"))
        except ValueError as exc:
            raise InvalidInput(f"Invalid query: {exc}") from None
        found = await adapter.deliveries.recent(
            endpoint.id, limit=limit, before=query_time(request, "before"), state=state
        )
        return answer({"items": [delivery.to_json() for delivery in found]})

    async def get_delivery(request: Request) -> Response:
        principal = await admin(request)
        endpoint = await adapter.endpoints.get(
            principal.organisation_id, request.path_params["endpoint_id"]
        )
        delivery = await adapter.deliveries.get(endpoint.id, request.path_params["delivery_id"])
        if delivery is None:
            raise NotFound("No such delivery.", code="delivery_not_found")
        return answer(delivery.to_json())

    async def replay_delivery(request: Request) -> Response:
        principal = await admin(request)
        endpoint = await adapter.endpoints.get(
            principal.organisation_id, request.path_params["endpoint_id"]
        )
        delivery = await adapter.deliveries.replay(endpoint.id, request.path_params["delivery_id"])
        adapter.offer(endpoint, delivery.queued)
        return answer(delivery.to_json(), 202)

    async def replay_since(request: Request) -> Response:
        principal = await admin(request)
        endpoint = await adapter.endpoints.get(
            principal.organisation_id, request.path_params["endpoint_id"]
        )
        body = await parse(request, ReplaySince)
        replayed = await adapter.deliveries.replay_since(endpoint.id, body.since)
        for delivery in replayed:
            adapter.offer(endpoint, delivery.queued)
        return answer({"replayed": len(replayed)}, 202)

    # -- inbound: a CAD acting on invites ------------------------------------------------------

    def as_rest(status: int, body: dict[str, Any]) -> Response:
        headers = dict(NO_STORE)
        if "id" in body:
            headers["Location"] = f"/api/v1/invites/{body['id']}"
        return JSONResponse(body, status_code=status, headers=headers)

    async def create_invite(request: Request) -> Response:
        principal = await showme.principal(request, "invites:write")
        body = await parse(request, InviteCreate)
        status, created = await showme.create_invite(
            principal,
            phone=body.phone,
            incident_id=body.incident_id,
            language=body.language,
            send_sms=body.send_sms,
            idempotency_key=request.headers.get("idempotency-key"),
        )
        return as_rest(status, created)

    async def end_invite(request: Request) -> Response:
        principal = await showme.principal(request, "invites:write")
        ended = await showme.end_invite(principal, request.path_params["invite_id"])
        return JSONResponse(ended, headers=NO_STORE)

    async def resend_invite(request: Request) -> Response:
        principal = await showme.principal(request, "invites:write")
        status, resent = await showme.resend_invite(
            principal,
            request.path_params["invite_id"],
            idempotency_key=request.headers.get("idempotency-key"),
        )
        return as_rest(status, resent)

    one = f"{PREFIX}/endpoints/{{endpoint_id}}"
    return [
        Route(f"{PREFIX}/endpoints", list_endpoints, methods=["GET"]),
        Route(f"{PREFIX}/endpoints", create_endpoint, methods=["POST"]),
        Route(one, get_endpoint, methods=["GET"]),
        Route(one, change_endpoint, methods=["PATCH"]),
        Route(one, delete_endpoint, methods=["DELETE"]),
        Route(f"{one}/rotate-secret", rotate_secret, methods=["POST"]),
        Route(f"{one}/deliveries", list_deliveries, methods=["GET"]),
        Route(f"{one}/deliveries/{{delivery_id}}", get_delivery, methods=["GET"]),
        Route(f"{one}/deliveries/{{delivery_id}}/replay", replay_delivery, methods=["POST"]),
        Route(f"{one}/replay", replay_since, methods=["POST"]),
        Route(f"{PREFIX}/invites", create_invite, methods=["POST"]),
        Route(f"{PREFIX}/invites/{{invite_id}}/end", end_invite, methods=["POST"]),
        Route(f"{PREFIX}/invites/{{invite_id}}/resend", resend_invite, methods=["POST"]),
    ]
