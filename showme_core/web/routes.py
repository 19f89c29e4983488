"""The route table: core routes first (they win), then what plugins contribute."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from showme_core.web import (
    caller,
    feed,
    incidents,
    invites,
    media,
    ops,
    pages,
    session,
    signal,
    sms_callbacks,
)
from showme_core.web.openapi import openapi_document

if TYPE_CHECKING:
    from showme_core.app import ShowMe


def api_routes() -> list[Route]:
    """Every ``/api/v1`` route of the core; the OpenAPI document must describe each one."""
    return [
        Route("/api/v1/session", session.create_session, methods=["POST"]),
        Route("/api/v1/session", session.delete_session, methods=["DELETE"]),
        Route("/api/v1/me", session.me, methods=["GET"]),
        Route("/api/v1/invites", invites.create_invite, methods=["POST"]),
        Route("/api/v1/invites", invites.list_invites, methods=["GET"]),
        Route("/api/v1/invites/{invite_id}", invites.get_invite, methods=["GET"]),
        Route("/api/v1/invites/{invite_id}/end", invites.end_invite, methods=["POST"]),
        Route("/api/v1/invites/{invite_id}/legal-hold", media.legal_hold, methods=["POST"]),
        Route("/api/v1/invites/{invite_id}/media", media.invite_media, methods=["GET"]),
        Route("/api/v1/media", media.organisation_media, methods=["GET"]),
        Route("/api/v1/media/{media_id}", media.media_file, methods=["GET"]),
        Route("/api/v1/media/{media_id}/thumbnail", media.media_thumbnail, methods=["GET"]),
        Route("/api/v1/events", feed.event_feed, methods=["GET"]),
        # The EIDO first: the id is read from the raw path, where "%2F" is not a separator.
        Route(
            "/api/v1/incidents/{incident_id:path}/eido", incidents.incident_eido, methods=["GET"]
        ),
        Route("/api/v1/incidents/{incident_id:path}", incidents.get_incident, methods=["GET"]),
        Route("/api/v1/caller/open", caller.open_link, methods=["POST"]),
        Route("/api/v1/caller/media", media.upload_picture, methods=["POST"]),
        Route("/api/v1/invites/{invite_id}/resend", invites.resend_invite, methods=["POST"]),
        Route(
            "/api/v1/sms/callbacks/{provider}/{message_id}/{secret}",
            sms_callbacks.sms_callback,
            methods=["GET", "POST"],
        ),
        Route(
            "/api/v1/sms/callbacks/{provider}", sms_callbacks.sms_callback, methods=["GET", "POST"]
        ),
        Route("/api/v1/console/extras", pages.console_extras, methods=["GET"]),
        Route("/api/v1/caller/extras", pages.caller_extras, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi_document, methods=["GET"]),
    ]


def build_routes(showme: ShowMe) -> list[BaseRoute]:
    return [
        *api_routes(),
        WebSocketRoute("/ws/signal", signal.signal),
        Route("/healthz", ops.healthz, methods=["GET"]),
        Route("/metrics", ops.metrics, methods=["GET"]),
        Route("/", pages.root, methods=["GET"]),
        *showme.plugins.routes(showme),
        Mount("/console", app=pages.console_files(), name="console"),
        Mount("/c", app=pages.caller_files(), name="caller"),
    ]
