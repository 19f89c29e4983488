"""SMS through Clickatell's Platform (One API family): plain HTTPS, no vendor SDK.

``POST {base_url}/messages`` with ``Authorization: <integration API key>`` (the raw key, no
``Bearer``) and ``{"content", "to": [msisdn without +], "clientMessageId", "from"?}``; Clickatell
answers ``202`` with ``messages[]`` (``apiMessageId``, ``accepted``, ``to``, ``error``) and a
request-level error. Errors come in two shapes, both read here: the One API's
``{"error": {"code", "description"}}`` and the Platform's flat
``{"errorCode", "error", "errorDescription"}``.

Delivery reports: Clickatell calls one URL per integration (set in its portal), without a
signature, so the URL carries a shared secret (``?token=``) and the report names the message by
the ``clientMessageId`` ShowMe sent (its own message id) or by Clickatell's ``messageId``.

The mappings, the sources and what is not verified: ``docs/sms-clickatell.md``.
"""

from __future__ import annotations

import email.utils
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import structlog

from showme_core.hookspecs import hookimpl
from showme_core.providers import (
    CallbackRefused,
    CallbackReport,
    OutgoingSms,
    SmsCallback,
    SmsError,
    SmsNotSent,
    SmsOutcomeUnknown,
    SmsProvider,
    SmsReceipt,
    SmsStatus,
)

if TYPE_CHECKING:
    from showme_core.config import Settings

NAME = "clickatell"
DOMAIN = "sms_clickatell"
DEFAULT_BASE_URL = "https://platform.clickatell.com"
DEFAULT_TIMEOUT = 10.0
MIN_TOKEN_LENGTH = 16
SETTINGS = ("api_key", "from", "callback_token", "base_url", "timeout")

log = structlog.get_logger("showme.sms.clickatell")

# -- send: error codes -------------------------------------------------------------------------
# One API error table (codes 1-111) plus the two Platform/REST codes seen in answers (105, 108).

#: Refusals no other provider can fix: the chain stops.
DEFINITIVE_ERRORS: dict[int, SmsError] = {
    25: SmsError.INVALID_NUMBER,  # Invalid recipient address
    26: SmsError.OPTED_OUT,  # Recipient opted out
    27: SmsError.NOT_SMS_CAPABLE,  # Recipient not available on channel
    105: SmsError.INVALID_NUMBER,  # Platform/REST: invalid destination address
}
#: Refusals about this account: the next provider may do better.
ACCOUNT_ERRORS: dict[int, SmsError] = {
    1: SmsError.AUTH_FAILED,  # Invalid or missing integration API key
    2: SmsError.AUTH_FAILED,  # Account not active
    3: SmsError.AUTH_FAILED,  # Integration not active
    7: SmsError.AUTH_FAILED,  # Originating IP address not approved
    46: SmsError.AUTH_FAILED,  # Demo access expired
    108: SmsError.AUTH_FAILED,  # Platform/REST: invalid or missing integration API key
    20: SmsError.NO_BALANCE,  # Insufficient balance
}
RATE_LIMIT_ERRORS = frozenset({43})  # Rate limit exceeded: not processed, retry later
UNCLEAR_ERRORS = frozenset({18, 19})  # Internal error (please retry): it may have gone out

# -- delivery reports: statuses ----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a Clickatell status means for ShowMe; ``status`` None: no news (stays ``sent``)."""

    status: SmsStatus | None
    error: SmsError | None = None


_NO_NEWS = Outcome(None)
_SENT = Outcome(SmsStatus.SENT)
_DELIVERED = Outcome(SmsStatus.DELIVERED)
_UNDELIVERED = Outcome(SmsStatus.UNDELIVERED, SmsError.UNDELIVERED)
_FAILED = Outcome(SmsStatus.FAILED, SmsError.PROVIDER_ERROR)

#: The One API message status table: ``{"event": {"messageStatusUpdate": [...]}}`` reports.
ONE_API_STATUSES: dict[int, tuple[str, Outcome]] = {
    1: ("UNKNOWN", _NO_NEWS),
    2: ("QUEUED", _SENT),
    3: ("SCHEDULED", _SENT),
    4: ("SENT_TO_SUPPLIER", _SENT),
    5: ("DEVICE_ACK", _DELIVERED),
    6: ("READ", _DELIVERED),
    20: ("EXPIRED", _UNDELIVERED),
    21: ("STOPPED_BY_USER", _FAILED),
    22: ("STOPPED_BY_ADMIN", _FAILED),
    23: ("DELIVERY_FAILURE", _UNDELIVERED),
    24: ("EMULATED", _FAILED),  # a sandbox integration: no phone ever gets it
    25: ("INSUFFICIENT_ACCOUNT_BALANCE", Outcome(SmsStatus.FAILED, SmsError.NO_BALANCE)),
    26: ("VOLUME_LIMIT", Outcome(SmsStatus.FAILED, SmsError.RATE_LIMITED)),
    27: ("VOLUME_LIMIT_DAILY", Outcome(SmsStatus.FAILED, SmsError.RATE_LIMITED)),
    28: ("VOLUME_LIMIT_MONTHLY", Outcome(SmsStatus.FAILED, SmsError.RATE_LIMITED)),
    29: ("RECIPIENT_DOES_NOT_EXIST", Outcome(SmsStatus.FAILED, SmsError.INVALID_NUMBER)),
    100: ("ROUTING_ERROR", _FAILED),
}
#: The Platform (SMS REST/HTTP) status codes: flat reports (``statusCode``, ``status``, ...).
PLATFORM_STATUSES: dict[int, tuple[str, Outcome]] = {
    1: ("MESSAGE_UNKNOWN", _NO_NEWS),
    2: ("MESSAGE_QUEUED", _SENT),
    3: ("DELIVERED_TO_GATEWAY", _SENT),
    4: ("RECEIVED_BY_RECIPIENT", _DELIVERED),
    5: ("ERROR_WITH_MESSAGE", _FAILED),
    6: ("USER_CANCELLED_MESSAGE_DELIVERY", _FAILED),
    7: ("ERROR_DELIVERING_MESSAGE", _UNDELIVERED),
    8: ("RECEIVED_BY_GATEWAY", _SENT),
    9: ("ROUTING_ERROR", _FAILED),
    10: ("MESSAGE_EXPIRED", _UNDELIVERED),
    11: ("MESSAGE_SCHEDULED", _SENT),
    12: ("OUT_OF_CREDIT", Outcome(SmsStatus.FAILED, SmsError.NO_BALANCE)),
    13: ("CLICKATELL_CANCELLED_MESSAGE_DELIVERY", _FAILED),
    14: ("MAXIMUM_MT_LIMIT_EXCEEDED", Outcome(SmsStatus.FAILED, SmsError.RATE_LIMITED)),
}
# A status name means one thing whichever table it comes from (the numbers do not: 4 is "sent to
# supplier" in the One API and "received by recipient" on the Platform), so names decide first.
STATUS_NAMES: dict[str, Outcome] = {
    **{name: outcome for name, outcome in PLATFORM_STATUSES.values()},
    **{name: outcome for name, outcome in ONE_API_STATUSES.values()},
}


class ClickatellSms:
    """The ``clickatell`` SMS provider (see the module docstring)."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        sender: str | None = None,
        callback_token: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("sms_clickatell needs 'api_key' (the integration's API key)")
        if sender is not None and (not isinstance(sender, str) or not sender.strip()):
            raise ValueError("sms_clickatell 'from' must be a sender ID or a number when given")
        if callback_token is not None and (
            not isinstance(callback_token, str) or len(callback_token) < MIN_TOKEN_LENGTH
        ):
            raise ValueError(
                f"sms_clickatell 'callback_token' must be at least {MIN_TOKEN_LENGTH} characters "
                "(generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"sms_clickatell 'base_url' is not an http(s) URL: {base_url!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ValueError("sms_clickatell 'timeout' must be a number of seconds")
        if not 0 < timeout <= 60:
            raise ValueError("sms_clickatell 'timeout' must be between 0 and 60 seconds")
        self.api_key = api_key.strip()
        self.sender = sender.strip().removeprefix("+") if sender else None
        self.callback_token = callback_token
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._transport = transport

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ClickatellSms:
        """Build from the ``[plugin_settings.sms_clickatell]`` block; unknown keys are refused."""
        unknown = sorted(set(options) - set(SETTINGS))
        if unknown:
            raise ValueError(
                f"sms_clickatell does not know the setting(s) {', '.join(unknown)} "
                f"(known: {', '.join(SETTINGS)})"
            )
        return cls(
            api_key=options.get("api_key", ""),
            sender=options.get("from"),
            callback_token=options.get("callback_token"),
            base_url=options.get("base_url", DEFAULT_BASE_URL),
            timeout=options.get("timeout", DEFAULT_TIMEOUT),
        )

    # -- sending ----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        # One client per call: a connection refused then really means nothing was sent (no
        # reused connection that may have died after the request went out).
        return httpx.AsyncClient(
            timeout=self.timeout,
            transport=self._transport,
            headers={
                "Authorization": self.api_key,
                "Accept": "application/json",
            },
            follow_redirects=False,
        )

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        payload: dict[str, Any] = {
            "content": sms.body,
            "to": [sms.to.strip().removeprefix("+")],
            "clientMessageId": sms.message_id,
        }
        if self.sender:
            payload["from"] = self.sender
        try:
            async with self._client() as client:
                answer = await client.post(f"{self.base_url}/messages", json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made (refused, DNS, unreachable): the request never arrived.
            raise SmsNotSent(f"Clickatell could not be reached ({type(exc).__name__})") from exc
        except httpx.TimeoutException as exc:
            raise SmsOutcomeUnknown(
                f"Clickatell did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise SmsOutcomeUnknown(f"Clickatell's answer was lost ({type(exc).__name__})") from exc
        return self._read_answer(answer)

    def _read_answer(self, answer: httpx.Response) -> SmsReceipt:
        status = answer.status_code
        ok = 200 <= status < 300
        if status == 429:
            raise SmsNotSent("Clickatell rate limit (HTTP 429)", retry_after=_retry_after(answer))
        if status >= 500:
            raise SmsOutcomeUnknown(f"Clickatell answered HTTP {status}")
        body = _json_object(answer)
        if body is None:
            if ok:
                raise SmsOutcomeUnknown(f"Clickatell answered HTTP {status} without readable JSON")
            return self._refusal(None, "", answer)
        request_error = _error_in(body)
        if request_error is not None:
            return self._refusal(*request_error, answer)
        messages = body.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        if not isinstance(first, dict):
            if ok:
                raise SmsOutcomeUnknown(f"Clickatell answered HTTP {status} without a message")
            return self._refusal(None, "", answer)
        if first.get("accepted") is True:
            api_message_id = first.get("apiMessageId")
            return SmsReceipt(
                SmsStatus.SENT,
                provider_message_id=str(api_message_id) if api_message_id else None,
            )
        message_error = _error_in(first)
        if message_error is None:
            if ok:
                raise SmsOutcomeUnknown("Clickatell neither accepted nor refused the message")
            return self._refusal(None, "", answer)
        return self._refusal(*message_error, answer)

    def _refusal(self, code: int | None, words: str, answer: httpx.Response) -> SmsReceipt:
        """A refusal as a receipt; a rate limit or an internal error raises instead."""
        status = answer.status_code
        said = f"HTTP {status}, error {code if code is not None else '-'}: {words or '-'}"[:300]
        if code is not None and code in RATE_LIMIT_ERRORS:
            raise SmsNotSent(
                f"Clickatell rate limit, treated as HTTP 429 ({said})",
                retry_after=_retry_after(answer),
            )
        if code is not None and code in UNCLEAR_ERRORS:
            raise SmsOutcomeUnknown(f"Clickatell internal error ({said})")
        definitive = code is not None and code in DEFINITIVE_ERRORS
        if code is not None and code in DEFINITIVE_ERRORS:
            error = DEFINITIVE_ERRORS[code]
        elif code is not None and code in ACCOUNT_ERRORS:
            error = ACCOUNT_ERRORS[code]
        elif status in (401, 403):
            error = SmsError.AUTH_FAILED
        elif status == 402:
            error = SmsError.NO_BALANCE
        else:
            error = SmsError.PROVIDER_ERROR
        log.warning(
            "clickatell refused a message", http_status=status, error=code, maps_to=error.value
        )
        return SmsReceipt(
            SmsStatus.FAILED,
            error_code=error.value,
            error_message=f"Clickatell: {said}",
            definitive=definitive,
        )

    # -- delivery reports -------------------------------------------------------------------

    def parse_callback(self, callback: SmsCallback) -> CallbackReport:
        if not self.callback_token:
            raise CallbackRefused("sms_clickatell has no 'callback_token': reports are refused")
        token = callback.query.get("token", "")
        if not hmac.compare_digest(token.encode(), self.callback_token.encode()):
            raise CallbackRefused("wrong or missing token")
        fields, tables = _report_fields(callback)
        client_message_id = _text(fields.get("clientMessageId"))
        provider_message_id = _text(fields.get("messageId") or fields.get("apiMessageId"))
        if client_message_id is None and provider_message_id is None:
            raise CallbackRefused("the report names no message")
        name = (_text(fields.get("status")) or "").upper()
        code = _integer(fields.get("statusCode"))
        if name in STATUS_NAMES:
            outcome = STATUS_NAMES[name]
        elif code is not None and code in tables:
            name, outcome = tables[code]
        else:
            outcome = _NO_NEWS
        words = None
        if outcome.error is not None:
            description = _text(fields.get("statusDescription")) or ""
            shown = code if code is not None else "-"
            words = f"Clickatell status {shown} {name} {description}".strip()[:300]
        receipt = SmsReceipt(
            outcome.status or SmsStatus.SENT,
            provider_message_id=provider_message_id,
            error_code=outcome.error.value if outcome.error is not None else None,
            error_message=words,
        )
        return CallbackReport(
            receipt=receipt, provider_message_id=provider_message_id, message_id=client_message_id
        )

    # -- showme check -----------------------------------------------------------------------

    async def check(self) -> str:
        url = f"{self.base_url}/public-client/balance"
        try:
            async with self._client() as client:
                answer = await client.get(url)
        except httpx.HTTPError as exc:
            raise RuntimeError(
                f"cannot reach Clickatell at {self.base_url} ({type(exc).__name__})"
            ) from exc
        if answer.status_code in (401, 403):
            raise RuntimeError(
                f"Clickatell: credentials refused (HTTP {answer.status_code}{_said(answer)})"
            )
        body = _json_object(answer)
        if answer.status_code != 200 or body is None:
            raise RuntimeError(f"Clickatell answered HTTP {answer.status_code}{_said(answer)}")
        balance = body.get("balance", "?")
        currency = body.get("currency", "")
        sender = self.sender or "the integration's default"
        reports = "accepted" if self.callback_token else "refused (no callback_token)"
        return (
            f"balance {balance} {currency}".rstrip()
            + f", sender {sender}, delivery reports {reports}"
        )


# -- helpers ------------------------------------------------------------------------------------


def _json_object(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(answer.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return None


def _error_in(obj: Mapping[str, Any]) -> tuple[int | None, str] | None:
    """``(code, words)`` of an error in either shape, or None when there is none.

    One API: ``{"error": {"code": 1, "description": "..."}}``; Platform: ``{"errorCode": 108,
    "error": "Invalid or missing integration API Key.", "errorDescription": "..."}``.
    """
    error = obj.get("error")
    if isinstance(error, dict):
        code = _integer(error.get("code"))
        words = _text(error.get("description")) or ""
        return (code, words) if code is not None or words else None
    code = _integer(obj.get("errorCode"))
    words = " - ".join(
        text for text in (_text(error), _text(obj.get("errorDescription"))) if text is not None
    )
    return (code, words) if code is not None or _text(error) else None


def _said(answer: httpx.Response) -> str:
    body = _json_object(answer)
    found = _error_in(body) if body is not None else None
    if found is None:
        return ""
    code, words = found
    return f", error {code if code is not None else '-'}: {words}"[:200]


def _retry_after(answer: httpx.Response) -> float | None:
    value = answer.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _report_fields(callback: SmsCallback) -> tuple[dict[str, Any], dict[int, tuple[str, Outcome]]]:
    """The fields of one status report and the status table its shape uses.

    One API: ``{"integrationId", "integrationName", "event": {"messageStatusUpdate": [{...}]}}``
    (one update per report today); Platform: the fields at the top level of a JSON body, a form,
    or, for a GET, the query.
    """
    if callback.body.strip():
        if callback.form:
            return dict(callback.form), PLATFORM_STATUSES
        try:
            data = json.loads(callback.body)
        except ValueError as exc:
            raise CallbackRefused("the report is not JSON") from exc
        if not isinstance(data, dict):
            raise CallbackRefused("the report is not a JSON object")
        if "event" in data:
            event = data["event"]
            updates = event.get("messageStatusUpdate") if isinstance(event, dict) else None
            if not isinstance(updates, list) or not updates or not isinstance(updates[0], dict):
                raise CallbackRefused("not a message status report")
            return updates[0], ONE_API_STATUSES
        return data, PLATFORM_STATUSES
    if callback.method.upper() == "GET":
        fields = {key: value for key, value in callback.query.items() if key != "token"}
        if fields:
            return fields, PLATFORM_STATUSES
    raise CallbackRefused("empty report")


@hookimpl
def showme_register_sms_providers(
    register: Callable[[SmsProvider], None], config: Settings
) -> None:
    register(ClickatellSms.from_options(config.settings_for(DOMAIN)))
