"""The Twilio SMS provider: Programmable Messaging's REST API through plain httpx.

Sending is ``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` (form fields
``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``) with HTTP Basic auth;
Twilio answers 201 with the message resource or an error object ``{code, message, more_info,
status}``. Status reports come back signed (``X-Twilio-Signature``, see :mod:`.signature`).

The message body holds the caller's link: it is never logged, nor is the number.
"""

from __future__ import annotations

import email.utils
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import structlog

from showme_core.providers import (
    CallbackRefused,
    CallbackReport,
    OutgoingSms,
    SmsCallback,
    SmsError,
    SmsNotSent,
    SmsOutcomeUnknown,
    SmsReceipt,
    SmsStatus,
)
from showme_sms_twilio import codes
from showme_sms_twilio.signature import is_valid

NAME = "twilio"
DOMAIN = "sms_twilio"
DEFAULT_BASE_URL = "https://api.twilio.com"
DEFAULT_TIMEOUT = 10.0
API_VERSION = "2010-04-01"

log = structlog.get_logger("showme.sms.twilio")

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_API_KEY = re.compile(r"SK[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
# An alphanumeric sender ID: up to 11 characters, at least one letter.
_ALPHANUMERIC = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 +\-_&.]{1,11}")
_KNOWN = frozenset(
    {
        "account_sid",
        "auth_token",
        "api_key",
        "api_secret",
        "from",
        "messaging_service_sid",
        "base_url",
        "timeout",
    }
)
# Errors after which the request provably never reached Twilio.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)


class TwilioCheckError(RuntimeError):
    """``showme check`` found the Twilio account unusable; the message says why."""


@dataclass(frozen=True)
class TwilioSettings:
    """The ``[plugin_settings.sms_twilio]`` block, checked."""

    account_sid: str
    auth_token: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    sender: str | None = None  # the "from" setting
    messaging_service_sid: str | None = None
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not _ACCOUNT_SID.fullmatch(self.account_sid):
            raise ValueError(
                "sms_twilio 'account_sid' must be the account SID: 'AC' and 32 hex digits"
            )
        if self.api_key is not None or self.api_secret is not None:
            if self.api_key is None or not _API_KEY.fullmatch(self.api_key):
                raise ValueError("sms_twilio 'api_key' must be an API key SID: 'SK' and 32 hex")
            if not self.api_secret:
                raise ValueError("sms_twilio 'api_key' needs its 'api_secret'")
        elif not self.auth_token:
            raise ValueError(
                "sms_twilio needs credentials: 'auth_token', or 'api_key' and 'api_secret' "
                "(and 'auth_token' as well to verify delivery reports)"
            )
        if (self.sender is None) == (self.messaging_service_sid is None):
            raise ValueError(
                "sms_twilio needs exactly one sender: 'from' (a number, short code or "
                "alphanumeric sender ID) or 'messaging_service_sid' (MG...)"
            )
        if self.sender is not None and not (
            _E164.fullmatch(self.sender)
            or _SHORT_CODE.fullmatch(self.sender)
            or _ALPHANUMERIC.fullmatch(self.sender)
        ):
            raise ValueError(
                "sms_twilio 'from' must be an E.164 number (+15005550006), a short code or an "
                "alphanumeric sender ID of at most 11 characters"
            )
        if self.messaging_service_sid is not None and not _SERVICE_SID.fullmatch(
            self.messaging_service_sid
        ):
            raise ValueError("sms_twilio 'messaging_service_sid' must be 'MG' and 32 hex digits")
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("sms_twilio 'base_url' must start with https:// (or http://)")
        if not (math.isfinite(self.timeout) and 0 < self.timeout <= 120):
            raise ValueError("sms_twilio 'timeout' must be between 0 and 120 seconds")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TwilioSettings:
        """Read the plugin's settings block; ``ValueError`` says what to fix."""
        if not options:
            raise ValueError(
                "sms_twilio is activated but [plugin_settings.sms_twilio] is missing: it needs "
                "'account_sid', credentials and a sender (docs/sms-twilio.md)"
            )
        unknown = sorted(set(options) - _KNOWN)
        if unknown:
            raise ValueError(
                f"sms_twilio does not know the setting(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(_KNOWN))})"
            )
        timeout = options.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float | str):
            raise ValueError("sms_twilio 'timeout' must be a number of seconds")
        try:
            seconds = float(timeout)
        except ValueError:
            raise ValueError("sms_twilio 'timeout' must be a number of seconds") from None
        return cls(
            account_sid=_text(options, "account_sid") or "",
            auth_token=_text(options, "auth_token"),
            api_key=_text(options, "api_key"),
            api_secret=_text(options, "api_secret"),
            sender=_text(options, "from"),
            messaging_service_sid=_text(options, "messaging_service_sid"),
            base_url=(_text(options, "base_url") or DEFAULT_BASE_URL).rstrip("/"),
            timeout=seconds,
        )

    @property
    def credentials(self) -> tuple[str, str]:
        """HTTP Basic user and password: the API key when there is one, else the auth token."""
        if self.api_key and self.api_secret:
            return self.api_key, self.api_secret
        return self.account_sid, self.auth_token or ""

    @property
    def sender_label(self) -> str:
        return self.messaging_service_sid or self.sender or "?"


def _text(options: dict[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"sms_twilio '{key}' must be a string")
    value = value.strip()
    return value or None


class TwilioSms:
    """Sends through one Twilio account; reads that account's signed status reports."""

    name = NAME

    def __init__(
        self, settings: TwilioSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._transport = transport  # tests only: an httpx.MockTransport
        account = f"{settings.base_url}/{API_VERSION}/Accounts/{settings.account_sid}"
        self.messages_url = f"{account}/Messages.json"
        self.account_url = f"{account}.json"

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            auth=self.settings.credentials,
            timeout=self.settings.timeout,
            transport=self._transport,
            headers={"Accept": "application/json", "User-Agent": "showme-sms-twilio"},
        )

    # -- sending -------------------------------------------------------------------------------

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        form = {"To": sms.to, "Body": sms.body}
        if self.settings.messaging_service_sid:
            form["MessagingServiceSid"] = self.settings.messaging_service_sid
        else:
            form["From"] = self.settings.sender or ""
        # Reports are only asked for when they can be verified (they need the auth token).
        if sms.callback_url and self.settings.auth_token:
            form["StatusCallback"] = sms.callback_url
        try:
            async with self._client() as client:
                answer = await client.post(self.messages_url, data=form)
        except _NOT_SENT as exc:
            log.warning("twilio not reached", message_id=sms.message_id, error=type(exc).__name__)
            raise SmsNotSent(
                f"Twilio could not be reached at {self.settings.base_url}: {_exc_text(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            # Read/write timeouts, a dropped connection: the request may have been processed.
            log.warning("twilio answer lost", message_id=sms.message_id, error=type(exc).__name__)
            raise SmsOutcomeUnknown(f"Twilio's answer did not arrive: {_exc_text(exc)}") from exc
        receipt = self._receipt(answer)
        log.info(
            "twilio answered",
            message_id=sms.message_id,
            http_status=answer.status_code,
            status=receipt.status.value,
            sid=receipt.provider_message_id,
            error_code=receipt.error_code,
        )
        return receipt

    def _receipt(self, answer: httpx.Response) -> SmsReceipt:
        status = answer.status_code
        body = _json_object(answer)
        code = codes.as_code(body.get("code")) if body is not None else None
        if status == 429 or code == 20429:
            retry_after = _retry_after(answer.headers.get("retry-after"))
            raise SmsNotSent(
                f"Twilio asks to slow down (HTTP {status}, {code or 'no code'}): "
                f"{_words(body) or 'too many requests'}",
                retry_after=retry_after,
            )
        if status >= 500:
            words = _words(body) or "no details"
            raise SmsOutcomeUnknown(f"Twilio answered HTTP {status}: {words}")
        if 200 <= status < 300:
            return self._accepted(status, body)
        if status < 400:
            raise SmsOutcomeUnknown(f"Twilio answered HTTP {status} (a redirect) to a send")
        fallback = SmsError.AUTH_FAILED if status in (401, 403) else SmsError.PROVIDER_ERROR
        meaning = codes.meaning(code, fallback)
        words = _words(body) or f"HTTP {status} without a Twilio error body"
        return SmsReceipt(
            SmsStatus.FAILED,
            error_code=meaning.error.value,
            error_message=codes.describe(code, words, fallback),
            definitive=meaning.definitive,
        )

    def _accepted(self, http_status: int, body: dict[str, Any] | None) -> SmsReceipt:
        sid = body.get("sid") if body is not None else None
        if body is None or not isinstance(sid, str) or not sid:
            raise SmsOutcomeUnknown(
                f"Twilio answered HTTP {http_status} with a body that is not a message resource"
            )
        twilio_status = str(body.get("status") or "").lower()
        if twilio_status in ("failed", "undelivered", "canceled"):
            code = codes.as_code(body.get("error_code"))
            meaning = codes.meaning(code, SmsError.PROVIDER_ERROR)
            words = body.get("error_message")
            return SmsReceipt(
                SmsStatus.FAILED,
                provider_message_id=sid,
                error_code=meaning.error.value,
                error_message=codes.describe(
                    code,
                    words if isinstance(words, str) else f"message {twilio_status}",
                    SmsError.PROVIDER_ERROR,
                ),
                definitive=meaning.definitive,
            )
        # queued (no Messaging Service), accepted or scheduled (with one), or already further:
        # Twilio has the message. ShowMe's "sent" means "handed to the provider".
        return SmsReceipt(SmsStatus.SENT, provider_message_id=sid)

    # -- status reports ------------------------------------------------------------------------

    def parse_callback(self, callback: SmsCallback) -> CallbackReport:
        token = self.settings.auth_token
        if not token:
            raise CallbackRefused(
                "sms_twilio has no 'auth_token': Twilio's status reports cannot be verified"
            )
        params = _params(callback)
        signature = callback.headers.get("x-twilio-signature")
        if not signature:
            raise CallbackRefused("the report has no X-Twilio-Signature header")
        if not is_valid(token, callback.url, params, signature):
            raise CallbackRefused("X-Twilio-Signature does not match this report")
        fields = {**callback.query, **dict(params)}
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        twilio_status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
        if not sid or not twilio_status:
            raise CallbackRefused("not a message status report (no MessageSid or MessageStatus)")
        account = fields.get("AccountSid")
        if account and account != self.settings.account_sid:
            raise CallbackRefused("the report is about another Twilio account")
        receipt = _report_receipt(
            sid, twilio_status, fields.get("ErrorCode"), fields.get("ErrorMessage")
        )
        return CallbackReport(receipt, provider_message_id=sid)

    # -- showme check --------------------------------------------------------------------------

    async def check(self) -> str:
        base = self.settings.base_url
        try:
            async with self._client() as client:
                answer = await client.get(self.account_url)
        except httpx.HTTPError as exc:
            raise TwilioCheckError(f"cannot reach Twilio at {base}: {_exc_text(exc)}") from exc
        body = _json_object(answer)
        words = _words(body) or "no details"
        sid = self.settings.account_sid
        who = (
            f"API key {self.settings.api_key}"
            if self.settings.api_key
            else f"account SID {sid} with its auth token"
        )
        if answer.status_code == 401:
            raise TwilioCheckError(f"Twilio refused the credentials ({who}): {words}")
        if answer.status_code == 403:
            raise TwilioCheckError(
                f"Twilio denied access to account {sid} ({who}): {words}; test credentials "
                "and restricted API keys cannot read the account"
            )
        if answer.status_code == 404:
            raise TwilioCheckError(f"Twilio knows no account {sid} for these credentials")
        if answer.status_code != 200 or body is None:
            raise TwilioCheckError(f"Twilio answered HTTP {answer.status_code}: {words}")
        state = str(body.get("status") or "unknown")
        if state != "active":
            raise TwilioCheckError(f"Twilio account {sid} is {state}, not active")
        reports = (
            "delivery reports verified with the auth token"
            if self.settings.auth_token
            else "no delivery reports (no auth_token)"
        )
        return (
            f"Twilio account {sid} (status {state}), sending from "
            f"{self.settings.sender_label}; {reports}"
        )


def _report_receipt(
    sid: str, twilio_status: str, error_code: str | None, error_message: str | None
) -> SmsReceipt:
    mapped = codes.status_of(twilio_status)
    if mapped is not None:
        return SmsReceipt(mapped, provider_message_id=sid)
    if twilio_status in ("undelivered", "failed", "canceled"):
        undelivered = twilio_status == "undelivered"
        fallback = SmsError.UNDELIVERED if undelivered else SmsError.PROVIDER_ERROR
        code = codes.as_code(error_code)
        meaning = codes.meaning(code, fallback)
        return SmsReceipt(
            SmsStatus.UNDELIVERED if undelivered else SmsStatus.FAILED,
            provider_message_id=sid,
            error_code=meaning.error.value,
            error_message=codes.describe(
                code, error_message or f"message {twilio_status}", fallback
            ),
            definitive=meaning.definitive,
        )
    # receiving, received, partially_delivered or a status Twilio adds later: says nothing about
    # delivery; SENT never moves a message that Twilio already accepted.
    return SmsReceipt(SmsStatus.SENT, provider_message_id=sid)


def _params(callback: SmsCallback) -> list[tuple[str, str]]:
    """The form parameters as received, repeated names included (the signature covers all)."""
    if not callback.body:
        return list(callback.form.items())
    try:
        return parse_qsl(callback.body.decode("utf-8"), keep_blank_values=True, max_num_fields=500)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CallbackRefused(f"the report's body is not a form: {type(exc).__name__}") from exc


def _json_object(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _words(body: dict[str, Any] | None) -> str:
    if body is None:
        return ""
    message = body.get("message")
    return message.strip() if isinstance(message, str) else ""


def _exc_text(exc: Exception) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
