"""Sending the link by SMS: credits, the message row, the provider chain and status updates."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select, update

from showme_core import audit
from showme_core.clock import iso, utcnow
from showme_core.ids import new_id
from showme_core.organisations import Organisation, change_credits
from showme_core.providers import (
    SMS_STATUS_RANK,
    CallbackRefused,
    CallbackReport,
    OutgoingSms,
    SmsCallback,
    SmsError,
    SmsNotSent,
    SmsReceipt,
    SmsStatus,
)
from showme_core.sms_templates import render, segments
from showme_core.store.schema import sms_messages

if TYPE_CHECKING:
    from showme_core.app import ShowMe, Transaction

log = structlog.get_logger("showme.sms")


def sms_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": iso(row.created_at),
        "status": row.status,
        "segments": row.segments,
        "provider": row.provider,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "updated_at": iso(row.updated_at),
    }


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def queue(
    tx: Transaction,
    org: Organisation,
    invite_id: str,
    to: str,
    language: str,
    link: str,
    callback_base: str,
) -> tuple[OutgoingSms, dict[str, Any]]:
    """Charge the credits and record the message, inside the invite's transaction.

    ``callback_base`` is ``<public url>/api/v1/sms/callbacks``; each provider gets
    ``<callback_base>/<provider>/<message id>/<secret>`` (see :func:`for_provider`)."""
    body = render(language, link)
    count = segments(body)
    message_id = new_id()
    callback_secret = secrets.token_urlsafe(18)
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
            callback_secret_hash=hash_secret(callback_secret),
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
        callback_url=f"{callback_base}/{message_id}/{callback_secret}",
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


ERROR_MESSAGES: dict[str, str] = {
    SmsError.INVALID_NUMBER: "The SMS provider says this number is not valid: check it with the "
    "caller.",
    SmsError.OPTED_OUT: "The caller's phone has blocked messages from this sender (it replied "
    "STOP): read the link out on the phone instead.",
    SmsError.NOT_SMS_CAPABLE: "This number cannot receive SMS (a landline?): ask for a mobile "
    "number.",
    SmsError.AUTH_FAILED: "The SMS account's credentials were refused: tell your administrator.",
    SmsError.RATE_LIMITED: "The SMS provider asks to slow down; the message was not sent.",
    SmsError.NO_BALANCE: "The SMS account has no credit left at the provider: tell your "
    "administrator.",
    SmsError.UNDELIVERED: "The network could not deliver the SMS (phone off or out of coverage?).",
    SmsError.PROVIDER_ERROR: "The SMS provider could not send the message.",
    "no_provider": "No SMS provider is configured for this organisation.",
    "provider_unavailable": "The organisation's SMS provider is not installed or not active.",
    "outcome_unknown": "The SMS provider did not answer clearly: the SMS may not have been sent. "
    "Resend it if the caller has not received it.",
}


def for_provider(sms: OutgoingSms, provider: str) -> OutgoingSms:
    """The message as one provider sends it: with that provider's delivery-report URL."""
    if sms.callback_url is None:
        return sms
    base, message_id, secret = sms.callback_url.rsplit("/", 2)
    return replace(sms, callback_url=f"{base}/{provider}/{message_id}/{secret}")


def _failure(code: str, words: str | None = None, definitive: bool = False) -> SmsReceipt:
    return SmsReceipt(
        SmsStatus.FAILED,
        error_code=code,
        error_message=ERROR_MESSAGES.get(code, ERROR_MESSAGES[SmsError.PROVIDER_ERROR]),
        definitive=definitive,
    )


async def deliver(
    showme: ShowMe, sms: OutgoingSms, chain: list[str], on_unclear: str = "continue"
) -> None:
    """Try the organisation's providers in order until one accepts the message (docs/sms.md)."""
    last = _failure("no_provider", definitive=True)
    unclear: str | None = None  # a provider that may have sent it
    for name in chain:
        provider = showme.sms_providers.get(name)
        if provider is None:
            log.error("sms provider not available", provider=name)
            last = _failure("provider_unavailable")
            continue
        # Reports from this provider are accepted from now on (they can beat its answer).
        await attempting(showme, sms.message_id, name)
        outgoing = for_provider(sms, name)
        delays = list(showme.settings.sms_retry_delays)
        while True:
            try:
                receipt = await asyncio.wait_for(
                    provider.send(outgoing), timeout=showme.settings.sms_timeout_seconds
                )
            except SmsNotSent as exc:
                # The provider provably has not got it: wait and retry, then the next provider.
                await record_attempt(showme, sms, name, "not_sent", str(exc))
                if delays:
                    wait = delays.pop(0)
                    if exc.retry_after is not None:
                        wait = min(max(wait, exc.retry_after), 5.0)
                    await asyncio.sleep(wait)
                    continue
                limited = exc.retry_after is not None or re.search(r"\b429\b", str(exc))
                last = _failure(SmsError.RATE_LIMITED if limited else "provider_error")
                break
            except Exception as exc:
                # Timeout, 5xx, an unreadable answer: the provider may have sent it.
                reason = f"{type(exc).__name__}: {exc}"[:200]
                await record_attempt(showme, sms, name, "outcome_unknown", reason)
                unclear = name
                if on_unclear == "stop":
                    await note_unclear(showme, sms.message_id, name)
                    return
                break
            if receipt.status is not SmsStatus.FAILED:
                await update_status(showme, sms.message_id, receipt, provider=name)
                return
            await record_attempt(
                showme, sms, name, receipt.error_code or "failed", receipt.error_message or ""
            )
            code = receipt.error_code or SmsError.PROVIDER_ERROR
            last = replace(
                receipt,
                error_code=code,
                error_message=ERROR_MESSAGES.get(code, ERROR_MESSAGES[SmsError.PROVIDER_ERROR]),
            )
            if receipt.definitive:
                await update_status(showme, sms.message_id, last, provider=name)
                return
            break
    if unclear is not None:
        # No provider accepted it, but one may have sent it: not a failure, and no refund; its
        # delivery report may still settle it, and the dispatcher can resend.
        await note_unclear(showme, sms.message_id, unclear)
        return
    await update_status(showme, sms.message_id, last)


async def attempting(showme: ShowMe, message_id: str, provider: str) -> None:
    async with showme.transaction() as tx:
        row = await _row(tx, message_id)
        if SmsStatus(row.status) is SmsStatus.QUEUED:
            await tx.conn.execute(
                update(sms_messages)
                .where(sms_messages.c.id == message_id)
                .values(provider=provider, updated_at=utcnow())
            )


async def note_unclear(showme: ShowMe, message_id: str, provider: str) -> None:
    """The chain ended on a provider that may have sent the message: still ``queued``, with the
    reason, attributed to that provider (whose report may still arrive)."""
    async with showme.transaction() as tx:
        row = await _row(tx, message_id)
        if SmsStatus(row.status) is not SmsStatus.QUEUED:
            return
        await tx.conn.execute(
            update(sms_messages)
            .where(sms_messages.c.id == message_id)
            .values(
                provider=provider,
                error_code="outcome_unknown",
                error_message=ERROR_MESSAGES["outcome_unknown"],
                updated_at=utcnow(),
            )
        )
        updated = await _row(tx, message_id)
        await tx.event(row.organisation_id, "sms.status", {"sms": sms_json(updated)}, row.invite_id)


async def record_attempt(
    showme: ShowMe, sms: OutgoingSms, provider: str, outcome: str, words: str
) -> None:
    """Every attempt that did not end in acceptance: in the audit log and on the feed."""
    # The provider's words may quote the number: keep them, without it.
    for number in (sms.to, sms.to.lstrip("+")):
        words = words.replace(number, "<number>")
    log.warning("sms attempt failed", provider=provider, outcome=outcome, detail=words[:200])
    async with showme.transaction() as tx:
        await audit.record(
            tx.conn,
            organisation_id=sms.organisation_id,
            actor="system",
            action="sms.attempt_failed",
            subject=sms.message_id,
            provider=provider,
            error_code=outcome,
            detail=words[:200],
        )
        await tx.event(
            sms.organisation_id,
            "sms.attempt",
            {"attempt": {"sms_id": sms.message_id, "provider": provider, "outcome": outcome}},
            sms.invite_id,
        )


async def update_status(
    showme: ShowMe,
    message_id: str,
    receipt: SmsReceipt,
    provider: str | None = None,
    reported_by: str | None = None,
) -> bool:
    """Move a message forward; a late or repeated report never moves it backwards.

    Returns whether anything changed. A failure refunds the credits (once).
    """
    async with showme.transaction() as tx:
        row = await _row(tx, message_id)
        if reported_by is not None and row.provider != reported_by:
            # Only the provider that has (or is being given) the message reports on it.
            raise CallbackRefused("the message is not with this provider")
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
        # Failed: nobody sent it, so it costs nothing. Undelivered was sent (and billed).
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


async def handle_callback(
    showme: ShowMe,
    provider_name: str,
    callback: SmsCallback,
    message_id: str | None = None,
    secret: str | None = None,
) -> bool:
    """A delivery report: authenticated by the provider's signature and, where the URL carries
    one, the message's own secret; it only ever moves the status forward. Returns whether it
    changed anything; raises :class:`CallbackRefused` for a report that is not genuine."""
    provider = showme.sms_providers.get(provider_name)
    parse = getattr(provider, "parse_callback", None)
    if provider is None or parse is None:
        raise CallbackRefused(f"no SMS provider {provider_name!r} takes delivery reports")
    report: CallbackReport = parse(callback)
    async with showme.db.read() as db:
        if message_id is not None:
            row = (
                await db.execute(select(sms_messages).where(sms_messages.c.id == message_id))
            ).first()
            expected = row.callback_secret_hash if row is not None else None
            if (
                row is None
                or secret is None
                or expected is None
                or not hmac.compare_digest(expected, hash_secret(secret))
            ):
                raise CallbackRefused("unknown message or wrong secret")
        elif report.message_id is not None:
            row = (
                await db.execute(select(sms_messages).where(sms_messages.c.id == report.message_id))
            ).first()
        elif report.provider_message_id is not None:
            row = (
                await db.execute(
                    select(sms_messages).where(
                        sms_messages.c.provider == provider_name,
                        sms_messages.c.provider_message_id == report.provider_message_id,
                    )
                )
            ).first()
        else:
            raise CallbackRefused("the report names no message")
    if row is None:
        raise CallbackRefused("no such message")
    if (
        report.provider_message_id is not None
        and row.provider_message_id is not None
        and report.provider_message_id != row.provider_message_id
    ):
        raise CallbackRefused("the report is about another message")
    receipt = report.receipt
    if receipt.status in (SmsStatus.FAILED, SmsStatus.UNDELIVERED):
        code = receipt.error_code or SmsError.UNDELIVERED
        receipt = replace(
            receipt,
            error_code=code,
            error_message=ERROR_MESSAGES.get(code, ERROR_MESSAGES[SmsError.PROVIDER_ERROR]),
        )
    if report.receipt.error_message:
        log.info(
            "sms delivery report words",
            provider=provider_name,
            detail=report.receipt.error_message[:200],
        )
    return await update_status(showme, row.id, receipt, reported_by=provider_name)
