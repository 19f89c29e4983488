"""What Twilio's statuses and error codes mean for ShowMe (``docs/sms-twilio.md`` has the table).

Twilio asks integrators not to build logic on many error codes (they get split over time), so
only the codes a dispatcher can act on are mapped; every other code is ``provider_error`` with
Twilio's own words, and a next provider in the chain gets its chance.
"""

from __future__ import annotations

from dataclasses import dataclass

from showme_core.providers import SmsError, SmsStatus


@dataclass(frozen=True)
class Meaning:
    error: SmsError
    definitive: bool
    description: str


# Codes in an API error answer (21xxx, 20xxx) and in a status report's ErrorCode (30xxx; a
# message accepted through a Messaging Service may also fail later with a 21xxx code).
ERROR_CODES: dict[int, Meaning] = {
    20003: Meaning(SmsError.AUTH_FAILED, False, "authentication failed"),
    21211: Meaning(SmsError.INVALID_NUMBER, True, "invalid 'To' phone number"),
    21610: Meaning(SmsError.OPTED_OUT, True, "the recipient unsubscribed (replied STOP)"),
    21614: Meaning(SmsError.NOT_SMS_CAPABLE, True, "'To' is not a mobile number"),
    # "Not reachable via SMS" can be about this sender's route as much as about the number:
    # another provider may still reach it.
    21612: Meaning(SmsError.NOT_SMS_CAPABLE, False, "'To' is not reachable via SMS from here"),
    # The account has no geographic permission for that country: a setting of this account,
    # not a property of the number.
    21408: Meaning(SmsError.PROVIDER_ERROR, False, "no permission to send to that region"),
    30001: Meaning(SmsError.RATE_LIMITED, False, "queue overflow (too many messages)"),
    30002: Meaning(SmsError.PROVIDER_ERROR, False, "account suspended"),
    30003: Meaning(SmsError.UNDELIVERED, False, "unreachable handset (off or out of coverage)"),
    30004: Meaning(SmsError.OPTED_OUT, True, "message blocked by or for the recipient"),
    30005: Meaning(SmsError.UNDELIVERED, False, "unknown handset (the number may not exist)"),
    30006: Meaning(SmsError.NOT_SMS_CAPABLE, True, "landline or unreachable carrier"),
    30007: Meaning(SmsError.PROVIDER_ERROR, False, "filtered by the carrier"),
    30008: Meaning(SmsError.UNDELIVERED, False, "unknown error from the network"),
}

# MessageStatus in a status report (and ``status`` in the answer to a send).
ACCEPTED = frozenset({"queued", "accepted", "scheduled", "sending", "sent"})
DELIVERED = frozenset({"delivered", "read"})


def meaning(code: int | None, fallback: SmsError) -> Meaning:
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code]
    return Meaning(fallback, False, "")


def as_code(value: object) -> int | None:
    """Twilio's error codes arrive as numbers (API) or strings (form fields)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def describe(code: int | None, words: str | None, fallback: SmsError) -> str:
    """Twilio's words for the log and the audit: ``Twilio 21211: <message> (<meaning>)``."""
    known = meaning(code, fallback).description
    head = f"Twilio {code}" if code is not None else "Twilio"
    text = (words or "").strip()
    if text and known:
        return f"{head}: {text} ({known})"
    return f"{head}: {text or known or 'no details'}"


def status_of(twilio_status: str) -> SmsStatus | None:
    """ShowMe's status for a Twilio status; ``None`` for failures (handled with their code)."""
    if twilio_status in ACCEPTED:
        return SmsStatus.SENT
    if twilio_status in DELIVERED:
        return SmsStatus.DELIVERED
    return None
