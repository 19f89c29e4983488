"""The provider contracts plugins implement: small typed classes with a ``name`` and async methods.

Hooks in :mod:`showme_core.hookspecs` hand instances of these over; the core picks one by name from
an organisation's configuration.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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

    ``definitive`` marks a failure that certainly did not send anything (bad number, opted out,
    authentication): its credits are refunded and the chain stops there.
    """

    status: SmsStatus
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    definitive: bool = False


@runtime_checkable
class SmsProvider(Protocol):
    """Sends SMS. ``name`` is what an organisation's ``sms_providers`` list refers to."""

    name: str

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        """Hand the message to the provider and say what it answered. Must not raise for a
        provider-side refusal; raise only when the outcome is unknown (network failure)."""
        ...


@dataclass(frozen=True)
class StoredObject:
    """Bytes a storage backend holds durably."""

    key: str
    size: int
    sha256: str


@runtime_checkable
class StorageBackend(Protocol):
    """Keeps media bytes. ``put`` returns only once the bytes are durable."""

    name: str

    async def put(self, key: str, data: bytes) -> StoredObject: ...

    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream the bytes of ``key``; raises ``KeyError`` when absent."""
        ...

    async def delete(self, key: str) -> None: ...

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
