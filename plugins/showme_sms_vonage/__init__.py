"""SMS through Vonage's SMS API (the former Nexmo "legacy" SMS API), with plain httpx.

``POST {base_url}/sms/json`` with the form fields ``api_key``, ``api_secret``, ``from``, ``to``
(international, without ``+``), ``text``, ``type=unicode`` when the text is not GSM-7,
``client-ref`` (ShowMe's message id) and, when ShowMe has a public URL, ``callback`` (this
message's delivery-report URL) with ``status-report-req=1``.

Vonage answers **HTTP 200 even when it refuses**: what happened is in ``messages[i].status``
("0" accepted, "1" throttled, ... see ``SEND_STATUSES``). Delivery reports arrive at the
per-message callback URL as a GET query or a POST (form or JSON); with ``signature_secret`` set
they must carry a valid ``sig`` (Vonage's signed webhooks). ``docs/sms-vonage.md`` has the
mapping tables and their sources.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
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

NAME = "vonage"
DOMAIN = "sms_vonage"
DEFAULT_BASE_URL = "https://rest.nexmo.com"
DEFAULT_TIMEOUT = 10.0
# A connection that cannot be made within this proves the request never left: the chain retries
# it (SmsNotSent) well inside the core's own deadline for a send.
MAX_CONNECT_TIMEOUT = 5.0

log = structlog.get_logger("showme.sms.vonage")

SETTINGS = {
    "api_key",
    "api_secret",
    "from",
    "signature_secret",
    "signature_method",
    "base_url",
    "timeout",
}

# Vonage's dashboard names them "MD5 hash" (the default), "MD5 HMAC", "SHA1 HMAC", "SHA-256 HMAC"
# and "SHA-512 HMAC"; these are the names its SDKs use.
SIGNATURE_METHODS: dict[str, str | None] = {
    "md5hash": None,
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "sha512": "sha512",
}

# GSM 03.38 default alphabet and its extension table: anything else needs type=unicode.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "^{}\\[~]|€\f"
)


def is_gsm7(text: str) -> bool:
    """Whether ``text`` fits the GSM-7 alphabet (with its extension table)."""
    return all(ch in _GSM7 for ch in text)


@dataclass(frozen=True)
class _Refusal:
    """What one non-zero ``messages[i].status`` of the SMS API means for ShowMe."""

    label: str
    error_code: SmsError
    definitive: bool = False


# https://developer.vonage.com/api-errors/sms and .../messaging/sms/guides/troubleshooting-sms.
# "1" (throttled), "5" (internal error) and "10" (too many binds) are not refusals: send() raises.
SEND_STATUSES: dict[str, _Refusal] = {
    "2": _Refusal("Missing Parameters", SmsError.PROVIDER_ERROR),
    "3": _Refusal("Invalid Parameters", SmsError.PROVIDER_ERROR),  # see _invalid_params
    "4": _Refusal("Invalid Credentials", SmsError.AUTH_FAILED),
    "6": _Refusal("Invalid Message (unrecognised number prefix)", SmsError.INVALID_NUMBER, True),
    "7": _Refusal("Number Barred", SmsError.OPTED_OUT, True),
    "8": _Refusal("Partner Account Barred (account suspended)", SmsError.AUTH_FAILED),
    "9": _Refusal("Partner Quota Violation (no credit)", SmsError.NO_BALANCE),
    "11": _Refusal("Account Not Enabled For HTTP", SmsError.PROVIDER_ERROR),
    "12": _Refusal("Message Too Long", SmsError.PROVIDER_ERROR),
    "14": _Refusal("Invalid Signature", SmsError.AUTH_FAILED),
    "15": _Refusal("Invalid Sender Address", SmsError.PROVIDER_ERROR),
}
THROTTLED = "1"
INTERNAL_ERROR = "5"
TOO_MANY_BINDS = "10"

# The err-code of a delivery receipt (Vonage support article 204014733, "SMS Delivery Error
# Codes"): anything not listed is an ordinary failure to deliver.
DLR_ERRORS: dict[str, _Refusal] = {
    "1": _Refusal("Unknown", SmsError.UNDELIVERED),
    "2": _Refusal("Absent Subscriber - Temporary", SmsError.UNDELIVERED),
    "3": _Refusal("Absent Subscriber - Permanent", SmsError.INVALID_NUMBER, True),
    "4": _Refusal("Call Barred by User", SmsError.OPTED_OUT, True),
    "5": _Refusal("Portability Error", SmsError.UNDELIVERED),
    "6": _Refusal("Anti-Spam Rejection", SmsError.UNDELIVERED),
    "7": _Refusal("Handset Busy", SmsError.UNDELIVERED),
    "8": _Refusal("Network Error", SmsError.UNDELIVERED),
    "9": _Refusal("Illegal Number (recipient refuses this service)", SmsError.OPTED_OUT, True),
    "10": _Refusal("Illegal Message", SmsError.PROVIDER_ERROR),
    "11": _Refusal("Unroutable", SmsError.PROVIDER_ERROR),
    "12": _Refusal("Destination Unreachable", SmsError.UNDELIVERED),
    "13": _Refusal("Subscriber Age Restriction", SmsError.UNDELIVERED),
    "14": _Refusal("Number Blocked by Carrier", SmsError.NOT_SMS_CAPABLE, True),
    "15": _Refusal("Pre-Paid - Insufficient Funds", SmsError.UNDELIVERED),
    "99": _Refusal("General Error", SmsError.UNDELIVERED),
}

# The ``status`` of a delivery receipt.
DLR_SENT = {"accepted", "buffered", "unknown"}
DLR_UNDELIVERED = {"failed", "expired"}
DLR_FAILED = {"rejected"}

_SENDER_WORDS = re.compile(r"\b(from|sender|originator)\b", re.IGNORECASE)
_RECIPIENT_WORDS = re.compile(r"\b(to|number|msisdn|recipient|destination)\b", re.IGNORECASE)


class VonageSms:
    """An :class:`~showme_core.providers.SmsProvider` for Vonage's SMS API."""

    name = NAME

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        sender: str,
        signature_secret: str | None = None,
        signature_method: str = "md5hash",
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not api_key or not isinstance(api_key, str):
            raise ValueError("sms_vonage needs 'api_key' (the Vonage dashboard's API key)")
        if not api_secret or not isinstance(api_secret, str):
            raise ValueError("sms_vonage needs 'api_secret' (the Vonage dashboard's API secret)")
        self.sender = _valid_sender(sender)
        if signature_method not in SIGNATURE_METHODS:
            raise ValueError(
                "sms_vonage 'signature_method' must be one of "
                + ", ".join(sorted(SIGNATURE_METHODS))
                + f", not {signature_method!r}"
            )
        if signature_secret is not None and not signature_secret:
            raise ValueError("sms_vonage 'signature_secret' is empty")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("sms_vonage 'base_url' must start with http:// or https://")
        if not 0 < timeout <= 120:
            raise ValueError("sms_vonage 'timeout' must be between 0 and 120 seconds")
        self.api_key = api_key
        self._api_secret = api_secret
        self._signature_secret = signature_secret
        self.signature_method = signature_method
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, MAX_CONNECT_TIMEOUT))

    @classmethod
    def from_settings(cls, options: dict[str, Any]) -> VonageSms:
        """Build the provider from the plugin's settings block, refusing what cannot work."""
        unknown = sorted(set(options) - SETTINGS)
        if unknown:
            raise ValueError(
                f"sms_vonage does not know the setting(s) {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(SETTINGS))}"
            )
        method = options.get("signature_method")
        secret = options.get("signature_secret")
        if method is not None and secret is None:
            raise ValueError("sms_vonage 'signature_method' is set but 'signature_secret' is not")
        try:
            timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError) as exc:
            raise ValueError("sms_vonage 'timeout' must be a number of seconds") from exc
        return cls(
            api_key=_text(options, "api_key"),
            api_secret=_text(options, "api_secret"),
            sender=_text(options, "from"),
            signature_secret=None if secret is None else str(secret),
            signature_method=str(method or "md5hash"),
            base_url=str(options.get("base_url", DEFAULT_BASE_URL)),
            timeout=timeout,
        )

    # ------------------------------------------------------------------------------------ send

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        form = {
            "api_key": self.api_key,
            "api_secret": self._api_secret,
            "from": self.sender,
            "to": sms.to.removeprefix("+"),
            "text": sms.body,
            "client-ref": sms.message_id,
        }
        if not is_gsm7(sms.body):
            form["type"] = "unicode"
        if sms.callback_url:
            form["callback"] = sms.callback_url
            form["status-report-req"] = "1"
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                answer = await client.post(
                    f"{self.base_url}/sms/json", data=form, headers={"Accept": "application/json"}
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise SmsNotSent(f"Vonage could not be reached ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                # The request may have reached Vonage: a read timeout, a dropped connection.
                raise SmsOutcomeUnknown(f"no answer from Vonage ({type(exc).__name__})") from exc
        return self._receipt(answer, sms)

    def _receipt(self, answer: httpx.Response, sms: OutgoingSms) -> SmsReceipt:
        code = answer.status_code
        if code == 429:
            raise SmsNotSent(
                "Vonage answered 429 (too many requests)",
                retry_after=_retry_after(answer.headers.get("retry-after")),
            )
        if code == 401:
            return _failed(SmsError.AUTH_FAILED, "Vonage refused the credentials (HTTP 401)")
        if code >= 500:
            raise SmsOutcomeUnknown(f"Vonage answered HTTP {code}")
        if code != 200:
            return _failed(SmsError.PROVIDER_ERROR, f"Vonage answered HTTP {code}")
        parts = _parts(answer)
        accepted = [part for part in parts if part["status"] == "0"]
        first_id = next((str(p["message-id"]) for p in accepted if p.get("message-id")), None)
        refused = next((part for part in parts if part["status"] != "0"), None)
        if refused is None:
            if first_id is None:
                raise SmsOutcomeUnknown("Vonage accepted the message but gave no message-id")
            return SmsReceipt(SmsStatus.SENT, provider_message_id=first_id)
        status = refused["status"]
        words = _words(refused, sms)
        partly = f" ({len(accepted)} of {len(parts)} parts accepted)" if accepted else ""
        if status == INTERNAL_ERROR:
            raise SmsOutcomeUnknown(f"Vonage status 5 (internal error): {words}{partly}")
        if status in (THROTTLED, TOO_MANY_BINDS) and not accepted:
            # Refused unprocessed: the core retries, then moves on. "429" is how the core tells
            # a rate limit from other transient refusals; status 1 is the SMS API's 429.
            label = "throttled" if status == THROTTLED else "too many binds"
            raise SmsNotSent(f"Vonage status {status} ({label}, like a 429): {words}")
        if status in (THROTTLED, TOO_MANY_BINDS):
            return _failed(
                SmsError.RATE_LIMITED, f"Vonage status {status}: {words}{partly}", first_id
            )
        meaning = SEND_STATUSES.get(status)
        if meaning is None:
            return _failed(
                SmsError.PROVIDER_ERROR, f"Vonage status {status}: {words}{partly}", first_id
            )
        if status == "3":
            meaning = _invalid_params(words)
        return _failed(
            meaning.error_code,
            f"Vonage status {status} ({meaning.label}): {words}{partly}",
            first_id,
            definitive=meaning.definitive,
        )

    # ------------------------------------------------------------------------ delivery reports

    def parse_callback(self, callback: SmsCallback) -> CallbackReport:
        params = _callback_params(callback)
        if self._signature_secret is not None:
            self._verify(params)
        elif not _names_message(callback.url):
            # The account-wide URL carries no per-message secret: only a signature could
            # prove such a report genuine.
            raise CallbackRefused(
                "unsigned Vonage report on the account-wide URL (set signature_secret)"
            )
        provider_id = params.get("messageId", "").strip()
        status = params.get("status", "").strip().lower()
        if not provider_id or not status:
            raise CallbackRefused("not a Vonage delivery receipt (no messageId or status)")
        client_ref = params.get("client-ref", "").strip() or None
        # A long text goes out in parts, each with its own messageId and its own receipt, all
        # with ShowMe's id in client-ref: with that, the core finds the message by its id (and
        # the per-message secret), and the first part's id, stored at sending, stays.
        named = None if client_ref else provider_id
        receipt = _dlr_receipt(status, params.get("err-code", "").strip(), named)
        return CallbackReport(receipt, provider_message_id=named, message_id=client_ref)

    def _verify(self, params: dict[str, str]) -> None:
        given = params.get("sig", "")
        if not given:
            raise CallbackRefused("unsigned Vonage report (signature_secret is set)")
        if "timestamp" not in params:
            raise CallbackRefused("signed Vonage report without a timestamp")
        assert self._signature_secret is not None
        expected = signature(params, self._signature_secret, self.signature_method)
        if not hmac.compare_digest(expected.lower(), given.strip().lower()):
            raise CallbackRefused("wrong Vonage signature")

    # ------------------------------------------------------------------------------- check

    async def check(self) -> str:
        """Ask the Account API for the balance: proves the key and secret work."""
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                answer = await client.get(
                    f"{self.base_url}/account/get-balance",
                    auth=(self.api_key, self._api_secret),
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise RuntimeError(f"Vonage could not be reached: {type(exc).__name__}") from exc
        if answer.status_code == 401:
            raise RuntimeError(f"Vonage account {self.api_key}: credentials refused (HTTP 401)")
        if answer.status_code != 200:
            raise RuntimeError(f"Vonage account {self.api_key}: HTTP {answer.status_code}")
        try:
            value = float(answer.json()["value"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError("Vonage's balance answer could not be read") from exc
        return f"Vonage account {self.api_key}, balance {value:.2f} EUR, sender {self.sender}"


def signature(params: dict[str, str], secret: str, method: str = "md5hash") -> str:
    """Vonage's request signature over ``params`` (``sig`` itself left out), lower-case hex.

    Every parameter sorted by name, each as ``&name=value`` with ``&`` and ``=`` inside values
    replaced by ``_``; then the MD5 of that string followed by the secret (``md5hash``), or the
    HMAC of it keyed with the secret (``md5``, ``sha1``, ``sha256``, ``sha512``). Vonage sends
    HMACs in upper case and the MD5 hash in lower case: compare without case.
    """
    text = "".join(
        "&{}={}".format(key, str(params[key]).replace("&", "_").replace("=", "_"))
        for key in sorted(params)
        if key != "sig"
    )
    digest = SIGNATURE_METHODS[method]
    if digest is None:
        # Vonage's default "MD5 hash" method; the HMAC methods are the better choice.
        return hashlib.md5((text + secret).encode()).hexdigest()  # noqa: S324
    return hmac.new(secret.encode(), text.encode(), digest).hexdigest()


# ----------------------------------------------------------------------------------- helpers


def _text(options: dict[str, Any], key: str) -> str:
    value = options.get(key)
    if value is None:
        raise ValueError(f"sms_vonage needs '{key}'")
    if not isinstance(value, str | int):
        raise ValueError(f"sms_vonage '{key}' must be text")
    return str(value)


def _valid_sender(sender: str) -> str:
    text = sender.strip().removeprefix("+")
    if not text:
        raise ValueError(
            "sms_vonage needs 'from': a Vonage number (international, e.g. 32470123456) "
            "or an alphanumeric sender id of at most 11 characters"
        )
    if text.isdigit():
        if len(text) > 15:
            raise ValueError("sms_vonage 'from' has more than 15 digits")
        return text
    if len(text) > 11 or not text.isascii() or not text.isprintable():
        raise ValueError(
            f"sms_vonage 'from' {sender!r} is neither a number nor an alphanumeric sender id "
            "(at most 11 ASCII characters)"
        )
    return text


def _failed(
    code: SmsError,
    words: str,
    provider_message_id: str | None = None,
    definitive: bool = False,
) -> SmsReceipt:
    return SmsReceipt(
        SmsStatus.FAILED,
        provider_message_id=provider_message_id,
        error_code=code.value,
        error_message=words[:300],
        definitive=definitive,
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _parts(answer: httpx.Response) -> list[dict[str, Any]]:
    """The ``messages`` of a 200 answer, each with ``status`` as text; unreadable: unknown."""
    try:
        body = answer.json()
    except ValueError as exc:
        raise SmsOutcomeUnknown("Vonage answered 200 without JSON") from exc
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise SmsOutcomeUnknown("Vonage answered 200 without messages")
    parts: list[dict[str, Any]] = []
    for part in messages:
        if not isinstance(part, dict) or "status" not in part:
            raise SmsOutcomeUnknown("Vonage answered 200 with an unreadable message status")
        parts.append({**part, "status": str(part["status"]).strip()})
    return parts


def _words(part: dict[str, Any], sms: OutgoingSms) -> str:
    """Vonage's ``error-text``, short and without the message text (it holds the link)."""
    words = str(part.get("error-text") or "no error-text")
    if sms.body:
        words = words.replace(sms.body, "[text]")
    return words[:200]


def _invalid_params(words: str) -> _Refusal:
    """Status 3 is "one or more parameters invalid": the recipient's number only when Vonage's
    words name it (not the sender, which is our configuration and no fault of the number)."""
    if _RECIPIENT_WORDS.search(words) and not _SENDER_WORDS.search(words):
        return _Refusal("Invalid Parameters: the recipient", SmsError.INVALID_NUMBER, True)
    return SEND_STATUSES["3"]


def _callback_params(callback: SmsCallback) -> dict[str, str]:
    """A report's fields: the query of a GET, the form or JSON body of a POST."""
    if callback.method.upper() != "POST":
        return dict(callback.query)
    if callback.form:
        return dict(callback.form)
    if callback.body.strip():
        try:
            body = json.loads(callback.body)
        except ValueError as exc:
            raise CallbackRefused("a Vonage report body that is neither form nor JSON") from exc
        if not isinstance(body, dict):
            raise CallbackRefused("a Vonage report whose JSON is not an object")
        return {str(key): _scalar(value) for key, value in body.items()}
    return dict(callback.query)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _names_message(url: str) -> bool:
    """Whether a callback URL is a per-message one (``.../callbacks/vonage/<id>/<secret>``)."""
    segments = [part for part in urlsplit(url).path.split("/") if part]
    try:
        at = len(segments) - 1 - segments[::-1].index("callbacks")
    except ValueError:
        return False
    return len(segments) - at - 1 >= 3


def _dlr_receipt(status: str, err_code: str, provider_id: str | None) -> SmsReceipt:
    if status == "delivered":
        return SmsReceipt(SmsStatus.DELIVERED, provider_message_id=provider_id)
    if status in DLR_UNDELIVERED or status in DLR_FAILED:
        meaning = DLR_ERRORS.get(err_code.lstrip("0") or "0")
        if meaning is None:
            default = SmsError.UNDELIVERED if status in DLR_UNDELIVERED else SmsError.PROVIDER_ERROR
            meaning = _Refusal("no reason given" if err_code in ("", "0") else "", default)
        words = f"Vonage receipt {status}, err-code {err_code or '-'}"
        if meaning.label:
            words += f" ({meaning.label})"
        return SmsReceipt(
            SmsStatus.UNDELIVERED if status in DLR_UNDELIVERED else SmsStatus.FAILED,
            provider_message_id=provider_id,
            error_code=meaning.error_code.value,
            error_message=words,
            definitive=meaning.definitive,
        )
    # accepted, buffered, unknown, or a status this plugin does not know: nothing final yet.
    if status not in DLR_SENT:
        log.info("vonage receipt with an unknown status", status=status[:20])
    return SmsReceipt(SmsStatus.SENT, provider_message_id=provider_id)


@hookimpl
def showme_register_sms_providers(
    register: Callable[[SmsProvider], None], config: Settings
) -> None:
    register(VonageSms.from_settings(config.settings_for(DOMAIN)))
