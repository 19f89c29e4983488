"""Sending the link by SMS: credits, the message row, the provider chain and status updates."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update

from showme_core import audit
from showme_core.clock import iso, utcnow
from showme_core.ids import new_id
from showme_core.organisations import Organisation, change_credits
from showme_core.providers import SMS_STATUS_RANK, OutgoingSms, SmsReceipt, SmsStatus
from showme_core.sms_templates import render, segments
from showme_core.store.schema import sms_messages

if TYPE_CHECKING:
    from showme_core.app import ShowMe, Transaction

log = structlog.get_logger("showme.sms")


def sms_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "segments": row.segments,
        "provider": row.provider,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "updated_at": iso(row.updated_at),
    }


async def queue(
    tx: Transaction, org: Organisation, invite_id: str, to: str, language: str, link: str
) -> tuple[OutgoingSms, dict[str, Any]]:
    """Charge the credits and record the message, inside the invite's transaction."""
    body = render(language, link)
    count = segments(body)
    message_id = new_id()
    now = utcnow()
    await tx.conn.execute(
        sms_messages.insert().values(
            id=message_id,
            organisation_id=org.id,
            invite_id=invite_id,
            to_number=to,
            language=language,
            segments=count,
            credits_charged=count,
            status=SmsStatus.QUEUED.value,
            created_at=now,
            updated_at=now,
        )
    )
    balance = await change_credits(
        tx.conn, org.id, -count, reason="sms", actor="system", sms_message_id=message_id
    )
    await tx.event(org.id, "credits.changed", {"credits": balance})
    row = await _row(tx, message_id)
    outgoing = OutgoingSms(
        message_id=message_id,
        organisation_id=org.id,
        invite_id=invite_id,
        to=to,
        body=body,
        segments=count,
    )
    return outgoing, sms_json(row)


async def _row(tx: Transaction, message_id: str) -> Any:
    # FOR UPDATE: concurrent status reports queue here (PostgreSQL); SQLite's write lock already
    # serialises writers, and SQLAlchemy omits the clause there.
    return (
        await tx.conn.execute(
            select(sms_messages).where(sms_messages.c.id == message_id).with_for_update()
        )
    ).one()


async def deliver(showme: ShowMe, sms: OutgoingSms, chain: list[str]) -> None:
    """Try the organisation's providers in order until one accepts the message."""
    last = SmsReceipt(
        SmsStatus.FAILED,
        error_code="no_provider",
        error_message="No SMS provider is configured for this organisation.",
        definitive=True,
    )
    for name in chain:
        provider = showme.sms_providers.get(name)
        if provider is None:
            log.error("sms provider not available", provider=name)
            last = SmsReceipt(
                SmsStatus.FAILED,
                error_code="provider_unavailable",
                error_message=f"SMS provider {name!r} is not installed or not active.",
            )
            continue
        try:
            receipt = await asyncio.wait_for(
                provider.send(sms), timeout=showme.settings.sms_timeout_seconds
            )
        except Exception as exc:
            # The outcome is unknown; a second SMS with the same link is harmless, a missing one
            # is not, so the next provider is tried.
            log.warning("sms provider failed", provider=name, error=type(exc).__name__)
            last = SmsReceipt(
                SmsStatus.FAILED,
                error_code="provider_error",
                error_message=f"The SMS provider {name!r} did not answer properly.",
            )
            await record_attempt(showme, sms, name, last)
            continue
        if receipt.status is not SmsStatus.FAILED:
            await update_status(showme, sms.message_id, receipt, provider=name)
            return
        last = receipt
        await record_attempt(showme, sms, name, receipt)
        if receipt.definitive:
            break
    await update_status(showme, sms.message_id, last)


async def record_attempt(
    showme: ShowMe, sms: OutgoingSms, provider: str, receipt: SmsReceipt
) -> None:
    async with showme.transaction() as tx:
        await audit.record(
            tx.conn,
            organisation_id=sms.organisation_id,
            actor="system",
            action="sms.attempt_failed",
            subject=sms.message_id,
            provider=provider,
            error_code=receipt.error_code,
        )


async def update_status(
    showme: ShowMe, message_id: str, receipt: SmsReceipt, provider: str | None = None
) -> bool:
    """Move a message forward; a late or repeated report never moves it backwards.

    Returns whether anything changed. A failure refunds the credits (once).
    """
    async with showme.transaction() as tx:
        row = await _row(tx, message_id)
        current = SmsStatus(row.status)
        if SMS_STATUS_RANK[receipt.status] <= SMS_STATUS_RANK[current]:
            return False
        values: dict[str, Any] = {"status": receipt.status.value, "updated_at": utcnow()}
        if provider is not None:
            values["provider"] = provider
        if receipt.provider_message_id:
            values["provider_message_id"] = receipt.provider_message_id
        if receipt.error_code or receipt.error_message:
            values["error_code"] = receipt.error_code
            values["error_message"] = receipt.error_message
        await tx.conn.execute(
            update(sms_messages).where(sms_messages.c.id == message_id).values(**values)
        )
        if receipt.status is SmsStatus.FAILED and row.credits_charged:
            balance = await change_credits(
                tx.conn,
                row.organisation_id,
                row.credits_charged,
                reason="refund",
                actor="system",
                sms_message_id=message_id,
            )
            await tx.event(row.organisation_id, "credits.changed", {"credits": balance})
        updated = await _row(tx, message_id)
        await tx.event(row.organisation_id, "sms.status", {"sms": sms_json(updated)}, row.invite_id)
    return True
