"""``/api/v1/events``: the console's live feed as Server-Sent Events.

This module admits a feed (credentials, resume point, caps) and streams it; the fan-out, the caps
and the credential re-checks are in :mod:`showme_core.feeds`. The store is the truth: the feed
starts after the last id the client saw (``Last-Event-ID`` on a reconnect, or ``?after=`` on the
first connect), so a reconnect loses nothing.
"""

from __future__ import annotations

import asyncio
import hashlib

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from showme_core.auth import SESSION_COOKIE, Principal
from showme_core.errors import InvalidInput, NotAuthenticated
from showme_core.events import last_event_id
from showme_core.feeds import Feed
from showme_core.web.auth import require_principal, showme_of

SCOPE = "events:read"


def _resume_point(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput("Last-Event-ID / after must be an event id") from exc
    if not 0 <= value < 2**63:
        raise InvalidInput("Last-Event-ID / after must be an event id")
    return value


def _credential_key(request: Request) -> str:
    """What tells this request's credential apart: the API key it presents, or its session
    cookie (hashed, so the table of open feeds holds no secret)."""
    header = request.headers.get("authorization")
    if header is not None:
        presented = f"authorization {header}"
    else:
        presented = f"cookie {request.cookies.get(SESSION_COOKIE, '')}"
    return hashlib.sha256(presented.encode()).hexdigest()


class FeedResponse(StreamingResponse):
    """The feed's stream; the feed's place is given back however the response ends, even when
    the client left before the stream started."""

    def __init__(self, feed: Feed) -> None:
        super().__init__(
            feed.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.feed.close()


async def event_feed(request: Request) -> Response:
    showme = showme_of(request)
    checked_at = asyncio.get_running_loop().time()
    principal = await require_principal(request, SCOPE)
    after = _resume_point(request)
    if after is None:
        async with showme.db.read() as db:
            after = await last_event_id(db, principal.organisation_id)

    async def check_again() -> None:
        # The same check that admitted the feed, on the same credential: when sessions become
        # rows of their own, ending one ends its feeds here with no change.
        again: Principal = await require_principal(request, SCOPE)
        if (again.organisation_id, again.actor) != (principal.organisation_id, principal.actor):
            raise NotAuthenticated("These credentials now name someone else; sign in again.")

    feed = showme.feeds.open(
        organisation_id=principal.organisation_id,
        holder=principal.actor,
        credential_key=_credential_key(request),
        check=check_again,
        checked_at=checked_at,
        after=after,
    )
    return FeedResponse(feed)
