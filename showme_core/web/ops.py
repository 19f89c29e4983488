"""Operations: health and Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from showme_core.web.auth import showme_of


async def healthz(request: Request) -> Response:
    showme = showme_of(request)
    try:
        await showme.db.ping()
    except Exception:
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "up"}, headers={"Cache-Control": "no-store"})


async def metrics(request: Request) -> Response:
    return Response(showme_of(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
