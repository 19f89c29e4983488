"""Operations: health and Prometheus metrics."""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core.errors import NotAuthenticated, NotFound
from showme_core.web.auth import showme_of


async def healthz(request: Request) -> Response:
    showme = showme_of(request)
    try:
        await showme.db.ping()
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "up"}, headers={"Cache-Control": "no-store"})


async def metrics(request: Request) -> Response:
    """Prometheus metrics, unless they have a listener of their own (``metrics_listen``); behind
    a bearer token when ``metrics_token`` is set."""
    settings = showme_of(request).settings
    if settings.metrics_listen:
        raise NotFound("Metrics are served on their own listener.")
    if settings.metrics_token:
        scheme, _, offered = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            offered.strip().encode(), settings.metrics_token.encode()
        ):
            raise NotAuthenticated("Metrics need 'Authorization: Bearer <metrics_token>'.")
    return Response(showme_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
