"""Delivery reports from SMS providers: ``/api/v1/sms/callbacks/...`` (docs/sms.md)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import structlog
from starlette.requests import Request
from starlette.responses import Response

from showme_core import sms
from showme_core.errors import ShowMeError
from showme_core.providers import CallbackRefused, SmsCallback
from showme_core.web.auth import showme_of
from showme_core.web.schemas import PayloadTooLarge

log = structlog.get_logger("showme.sms")
MAX_CALLBACK_BYTES = 16 * 1024


class CallbackRefusedError(ShowMeError):
    status = 403
    code = "callback_refused"


async def sms_callback(request: Request) -> Response:
    """Accept a provider's report, or refuse it with 403; a genuine repeat answers 204 too."""
    showme = showme_of(request)
    provider = request.path_params["provider"]
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CALLBACK_BYTES:
            raise PayloadTooLarge(f"A delivery report is at most {MAX_CALLBACK_BYTES} bytes.")
    content_type = request.headers.get("content-type", "")
    form = (
        dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if content_type.startswith("application/x-www-form-urlencoded")
        else {}
    )
    # The URL the provider called, as it called it: signatures (Twilio's) cover it, and behind a
    # TLS proxy the request's own URL is the internal one.
    base = showme.public_base()
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    callback = SmsCallback(
        method=request.method,
        url=url,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        form=form,
        body=body,
    )
    try:
        changed = await sms.handle_callback(
            showme,
            provider,
            callback,
            message_id=request.path_params.get("message_id"),
            secret=request.path_params.get("secret"),
        )
    except CallbackRefused as exc:
        log.warning("sms delivery report refused", provider=provider, reason=str(exc))
        raise CallbackRefusedError("This delivery report was refused.") from exc
    log.info("sms delivery report", provider=provider, changed=changed)
    return Response(status_code=204)
