"""The provider contracts plugins implement: small typed classes with a ``name`` and async methods.

Hooks in :mod:`showme_core.hookspecs` hand instances of these over; the core picks one by name from
an organisation's configuration.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class SmsStatus(enum.StrEnum):
    """Where an SMS is; the order of ``RANK`` is the only direction a status may move."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


SMS_STATUS_RANK = {
    SmsStatus.QUEUED: 0,
    SmsStatus.SENT: 1,
    SmsStatus.DELIVERED: 2,
    SmsStatus.UNDELIVERED: 2,
    SmsStatus.FAILED: 2,
}


class SmsError(enum.StrEnum):
    """What went wrong with a message, in terms a dispatcher can act on (``sms.ERROR_MESSAGES``)."""

    INVALID_NUMBER = "invalid_number"
    OPTED_OUT = "opted_out"
    NOT_SMS_CAPABLE = "not_sms_capable"
    AUTH_FAILED = "auth_failed"
    RATE_LIMITED = "rate_limited"
    NO_BALANCE = "no_balance"
    UNDELIVERED = "undelivered"
    PROVIDER_ERROR = "provider_error"


class SmsNotSent(Exception):
    """The request provably did not reach the provider, or it refused to process it without
    sending (connection refused, DNS failure, HTTP 429): safe to retry, then the next provider.

    :param retry_after: seconds the provider asked us to wait, if it said so.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class SmsOutcomeUnknown(Exception):
    """The provider may have sent the message (a timeout, a 5xx, an answer that cannot be read).
    By default the chain moves on anyway; an organisation may choose to stop instead."""


@dataclass(frozen=True)
class OutgoingSms:
    """One message to send. ``body`` contains the caller's link: never log it."""

    message_id: str
    organisation_id: str
    invite_id: str
    to: str
    body: str
    segments: int
    callback_url: str | None = None


@dataclass(frozen=True)
class SmsReceipt:
    """What a provider said about a send.

    ``definitive`` marks a failure no other provider can fix (an invalid number, a recipient who
    opted out, a number that cannot receive SMS): the chain stops there. Any ``FAILED`` that ends
    a message refunds its credits once. ``error_code`` is an :class:`SmsError` value;
    ``error_message`` is the provider's own words, for the log and the audit.
    """

    status: SmsStatus
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    definitive: bool = False


@runtime_checkable
class SmsProvider(Protocol):
    """Sends SMS. ``name`` is what an organisation's ``sms_providers`` list refers to.

    Optional methods the core uses when a provider has them:

    - ``parse_callback(callback: SmsCallback) -> CallbackReport``: read a delivery report the
      provider sent to ``/api/v1/sms/callbacks/<name>/...``; raise :class:`CallbackRefused` when
      its signature or shape is wrong.
    - ``async check() -> str``: ask the provider whether the configured credentials work; return
      a short description (account, sender), raise with a clear message when they do not. Used
      by ``showme check``.
    """

    name: str

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        """Hand the message to the provider and say what it answered: a receipt for anything
        the provider answered (acceptance or refusal); raise :class:`SmsNotSent` when the request
        provably did not arrive (connection refused, DNS, 429) and :class:`SmsOutcomeUnknown`
        when it may have (timeout, 5xx)."""
        ...


@dataclass(frozen=True)
class SmsCallback:
    """A delivery report as it reached ShowMe. ``url`` is the public URL the provider called
    (``public_url`` + path + query), which is what signatures such as Twilio's cover."""

    method: str
    url: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    form: dict[str, str]  # a form-encoded body, parsed (empty otherwise)
    body: bytes  # the raw body (JSON providers parse it themselves)


@dataclass(frozen=True)
class CallbackReport:
    """What a delivery report says. The core finds the message by ``message_id`` (ShowMe's own,
    when the provider echoes it back) or by ``provider_message_id``."""

    receipt: SmsReceipt
    provider_message_id: str | None = None
    message_id: str | None = None


class CallbackRefused(Exception):
    """A delivery report that is forged, or not one at all; it changes nothing."""


@dataclass(frozen=True)
class StoredObject:
    """Bytes a storage backend holds durably."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class StoredKey:
    """A key a storage backend holds, and when it was written (UTC)."""

    key: str
    modified_at: datetime


@runtime_checkable
class StorageBackend(Protocol):
    """Keeps media bytes. ``put`` returns only once the bytes are durable.

    An optional method the core uses when a backend has it (a backend without it still loads):

    - ``list(prefix: str = "") -> AsyncIterator[StoredKey]``: every key under ``prefix``
      (``""``: all), including what an interrupted write left behind, which ``delete`` removes
      like any key. The core compares it with its rows to remove bytes a crash orphaned, so
      nothing stored escapes retention; without it, such bytes stay until an operator removes
      them.
    """

    name: str

    async def put(self, key: str, data: bytes) -> StoredObject: ...

    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the bytes of ``key``; raises ``KeyError`` when absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...


@dataclass(frozen=True)
class IceRequest:
    """Who needs ICE servers: one signaling socket of one session."""

    organisation_id: str
    invite_id: str
    role: str  # "caller" or "console"
    peer_id: str  # unique per socket: a TURN user name may carry it


@dataclass(frozen=True)
class IceConfig:
    """``iceServers`` as ``RTCConfiguration`` takes them, and how long their credentials live."""

    ice_servers: list[dict[str, Any]]
    ttl: int | None = None


@runtime_checkable
class IceProvider(Protocol):
    """Hands out STUN/TURN servers, with credentials issued for one socket at a time."""

    name: str

    async def ice_servers(self, request: IceRequest) -> IceConfig:
        """Fresh servers and credentials for ``request``; called at every join and before every
        ICE restart, so short-lived credentials are never reused past their life."""
        ...


@dataclass(frozen=True)
class PageExtras:
    """Scripts (ES modules) and stylesheets a plugin adds to the console or the caller page.

    URLs must be same-origin paths (the pages' Content-Security-Policy allows nothing else);
    a plugin serves them through ``showme_routes``.
    """

    scripts: list[str] = field(default_factory=list)
    stylesheets: list[str] = field(default_factory=list)


@runtime_checkable
class EventConsumer(Protocol):
    """Receives each organisation's events in commit order, at least once, from a cursor the
    core keeps for it in the store (``docs/plugins.md``, "Durable consumers").

    ``deliver`` returns once the event is taken care of; an exception (or taking longer than
    10 s) makes the core deliver the same event again later, with growing waits, before any newer
    one. So ``deliver`` must be idempotent: after a crash an event may come twice. A consumer
    new to an organisation starts at its first event; with ``start = "latest"`` it skips the
    history of organisations that existed when the instance started (it starts at their newest
    event), and still gets every event of an organisation made while it runs.
    """

    name: str

    async def deliver(self, event: Any) -> None: ...


@runtime_checkable
class CadAdapter(Protocol):
    """A CAD integration. It receives the organisation's events as a durable consumer does
    (same guarantees), and may contribute routes through ``showme_routes`` and answer
    ``showme check`` with an ``async check() -> str`` of its own."""

    name: str

    async def deliver(self, event: Any) -> None: ...


class Refused(Exception):
    """A plugin refuses what it was shown; ``reason`` is shown as it is (to a dispatcher for an
    invite, to the caller for a picture), so write it for them."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InviteRefused(Refused):
    """Raised by ``showme_amend_invite``: the invite is not created."""


class PictureRefused(Refused):
    """Raised by ``showme_check_picture``: the picture is not stored."""


@dataclass
class InviteDraft:
    """An invite about to be created, as ``showme_amend_invite`` may amend it: every field may
    change (the core validates them again). ``labels`` are short texts (at most 16, each key up to
    40 and each value up to 200 characters) stored with the invite and shown to its readers."""

    organisation_id: str
    phone: str  # E.164
    incident_id: str | None
    language: str
    send_sms: bool
    created_by: str  # "user:<id>" or "api_key:<id>"
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PictureCandidate:
    """A caller's picture, decoded and cleaned, not yet stored (``showme_check_picture``).
    ``data`` is the clean JPEG that would be stored; ``sha256`` its hash; ``upload_sha256`` the
    hash of the bytes as the phone sent them."""

    organisation_id: str
    invite_id: str
    kind: str
    data: bytes
    sha256: str
    upload_sha256: str
    width: int
    height: int
    source_format: str
    location: dict[str, Any] | None


@dataclass(frozen=True)
class StreamChange:
    """A live session's step (``showme_on_stream``): it ``started`` (the camera was granted),
    changed ``rung`` (``video``, ``stills`` or ``failed``), or ``ended``; ``outcome`` is then the
    best rung it reached (``video``, ``stills``, ``failed`` or ``none``)."""

    organisation_id: str
    invite_id: str
    change: str  # "started", "rung" or "ended"
    rung: str | None = None
    route: str | None = None  # "direct" or "relay", with rung "video"
    reason: str | None = None  # with rung "failed"
    outcome: str | None = None  # with change "ended"


@dataclass(frozen=True)
class CliCommand:
    """A ``showme <name> ...`` command a plugin adds (``showme_register_commands``).

    ``configure(parser)`` adds its arguments (and subcommands) to an ``argparse`` parser;
    ``run(showme, args)`` does the work with a service object (the store open, no HTTP) and
    returns the exit code. Print for the operator; raise ``ShowMeError`` for a one-line error.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Any, argparse.Namespace], Awaitable[int]]
