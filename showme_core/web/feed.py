"""``/api/v1/events``: the console's live feed as Server-Sent Events.

The store is the truth: the feed reads events after the last id the client saw (``Last-Event-ID``
on a reconnect, or ``?after=`` on the first connect), sends them, then sleeps until the bus wakes
it or the heartbeat is due. A reconnect therefore loses nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from showme_core.errors import InvalidInput, ShowMeError
from showme_core.events import events_after, last_event_id
from showme_core.web.auth import require_principal, showme_of

RETRY_MS = 2000


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


async def event_feed(request: Request) -> Response:
    principal = await require_principal(request, "events:read")
    showme = showme_of(request)
    org_id = principal.organisation_id
    after = _resume_point(request)
    if after is None:
        async with showme.db.read() as db:
            after = await last_event_id(db, org_id)
    heartbeat = showme.settings.sse_heartbeat_seconds

    async def stream() -> AsyncIterator[str]:
        last = after
        showme.metrics.feed_clients.inc()
        try:
            yield f"retry: {RETRY_MS}\n: feed from {last}\n\n"
            with showme.bus.listen(org_id) as wake:
                while True:
                    wake.clear()
                    async with showme.db.read() as db:
                        batch = await events_after(db, org_id, last)
                    for event in batch:
                        last = event.id
                        data = json.dumps(event.to_json(), separators=(",", ":"))
                        yield f"id: {event.id}\ndata: {data}\n\n"
                    if batch:
                        continue
                    try:
                        await asyncio.wait_for(wake.wait(), timeout=heartbeat)
                    except TimeoutError:
                        # Credentials can expire or be revoked while a feed stays open.
                        try:
                            await require_principal(request, "events:read")
                        except ShowMeError:
                            yield "event: ended\ndata: {}\n\n"
                            return
                        yield ": keep-alive\n\n"
        finally:
            showme.metrics.feed_clients.dec()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
