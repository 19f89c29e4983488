"""The ``outbox`` SMS provider: keeps each message so the console can show it with its link.

It lets the demo (and a PSAP that reads the link out on the phone) work without any SMS account.
Messages live in this process's memory only, never in the database: the link carries the caller's
token, which the store keeps only as a hash. The log gets the message with the token redacted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from showme_core.clock import iso, utcnow
from showme_core.hookspecs import hookimpl
from showme_core.logs import redact_text
from showme_core.providers import OutgoingSms, SmsProvider, SmsReceipt, SmsStatus

if TYPE_CHECKING:
    from showme_core.app import ShowMe

NAME = "outbox"
KEEP_PER_ORGANISATION = 200
log = structlog.get_logger("showme.sms.outbox")


@dataclass(frozen=True)
class OutboxEntry:
    sms: OutgoingSms
    created_at: str


class OutboxSmsProvider:
    name = NAME

    def __init__(self) -> None:
        self._messages: dict[str, deque[OutboxEntry]] = {}

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        box = self._messages.setdefault(sms.organisation_id, deque(maxlen=KEEP_PER_ORGANISATION))
        box.appendleft(OutboxEntry(sms, iso(utcnow()) or ""))
        log.info("sms kept in outbox", to=sms.to, text=redact_text(sms.body), id=sms.message_id)
        return SmsReceipt(SmsStatus.SENT, provider_message_id=f"outbox-{sms.message_id}")

    def messages(self, organisation_id: str) -> list[OutboxEntry]:
        return list(self._messages.get(organisation_id, ()))


@hookimpl
def showme_register_sms_providers(register: Callable[[SmsProvider], None]) -> None:
    register(OutboxSmsProvider())


@hookimpl
def showme_routes(showme: ShowMe) -> list[BaseRoute]:
    from showme_core.web.auth import require_principal

    async def outbox(request: Request) -> JSONResponse:
        # The bodies carry live caller links: only for those allowed to send them.
        principal = await require_principal(request, "invites:write")
        provider = showme.sms_providers[NAME]
        assert isinstance(provider, OutboxSmsProvider)
        items = [
            {
                "id": entry.sms.message_id,
                "invite_id": entry.sms.invite_id,
                "to": entry.sms.to,
                "body": entry.sms.body,
                "created_at": entry.created_at,
            }
            for entry in provider.messages(principal.organisation_id)
        ]
        return JSONResponse({"items": items}, headers={"Cache-Control": "no-store"})

    return [Route("/api/v1/outbox", outbox, methods=["GET"], name="outbox")]
