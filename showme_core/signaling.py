"""WebRTC signaling: one room per invite, a caller and a console, messages relayed and never stored.

The transport (a WebSocket) is in :mod:`showme_core.web.signal`; this module decides who may be in
a room and hands out ICE servers. What may be relayed is :mod:`showme_core.signaling_messages`;
what reports become events, audit records and metrics is :mod:`showme_core.stream_reports`. Which
phone may be the caller is the store's word (:mod:`showme_core.devices`). The protocol is written
down in ``docs/live.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from showme_core import devices
from showme_core.clock import utcnow
from showme_core.errors import ShowMeError, TooBusy
from showme_core.providers import IceConfig, IceRequest
from showme_core.signaling_messages import (
    CALLER_RELAYS,
    CONSOLE_RELAYS,
    Refusal,
    bad_message,
    link_replaced,
    validate_relayed,
)
from showme_core.stream_reports import StreamRecord, StreamReports

if TYPE_CHECKING:
    from showme_core.app import ShowMe

log = structlog.get_logger("showme.signaling")

MAX_MESSAGE_BYTES = 64 * 1024
MAX_MESSAGES_PER_SECOND = 50
HELLO_TIMEOUT_SECONDS = 10.0
ICE_REUSE_SECONDS = 2.0
# Provider calls (a Twilio token costs an API request) per invite and per organisation, as
# (count, seconds) windows; over them a socket gets the room's latest answer for its role.
ICE_CALLS_PER_INVITE = [(10, 60.0)]
ICE_CALLS_PER_ORGANISATION = [(300, 60.0)]
# What the other side says while a socket waits for its ICE servers, kept for its welcome.
MAX_HELD_MESSAGES = 200
# Phones waiting to be allowed, per invite (each keeps knocking until it is).
MAX_DEVICE_REQUESTS = 8
DEVICE_REQUEST_SECONDS = 3600.0

Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[int, str, str], Awaitable[None]]


@dataclass(eq=False)
class Peer:
    """One socket in a room. A caller's ``device`` is its phone's fingerprint
    (:func:`showme_core.devices.fingerprint`)."""

    role: str
    organisation_id: str
    invite_id: str
    actor: str
    send: Send
    close: Close
    device: str | None = None
    # The link the caller said hello with, and the hub's relink count before it was checked.
    token_hash: str | None = None
    admitted: int = 0
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    ice: dict[str, Any] | None = None
    ice_at: float = 0.0
    # Until its welcome is out, what others send this socket waits here, in order.
    welcomed: bool = False
    held: list[dict[str, Any]] = field(default_factory=list)
    _tokens: float = MAX_MESSAGES_PER_SECOND
    _refilled: float = field(default_factory=time.monotonic)

    def allow_message(self) -> bool:
        """A token bucket: bursts of 50 messages, 50 per second on average."""
        now = time.monotonic()
        self._tokens = min(
            MAX_MESSAGES_PER_SECOND, self._tokens + (now - self._refilled) * MAX_MESSAGES_PER_SECOND
        )
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass(eq=False)
class Room:
    invite_id: str
    organisation_id: str
    expires_at: datetime
    caller: Peer | None = None
    console: Peer | None = None
    camera_granted_at: float | None = None
    first_frame_seen: bool = False
    expiry: asyncio.TimerHandle | None = None
    # The stream's state as last reported, what was last written, and when each kind was.
    state: str = "idle"
    route: str | None = None
    written: tuple[str, dict[str, Any]] | None = None
    written_at: dict[str, float] = field(default_factory=dict)
    latest: StreamRecord | None = None
    flush: asyncio.TimerHandle | None = None
    # The best rung the session reached: its outcome when it ends (showme_on_stream).
    best: str = "none"


class Hub:
    """The rooms of one service instance (a bus plugin will fan them out across instances)."""

    def __init__(self, showme: ShowMe) -> None:
        self.showme = showme
        self.rooms: dict[str, Room] = {}
        # Invites ended while a socket of theirs was being admitted: no room may be made again.
        self.ended: dict[str, datetime] = {}
        # Phones refused as another device, per invite: fingerprint -> when first refused.
        self.requests: dict[str, dict[str, float]] = {}
        # Resends: a socket admitted before one (its link checked before) is not seated after.
        self.relinks = 0
        self.relinked: dict[str, int] = {}
        # The latest ICE answer per (invite, role): reused when over the provider call limits.
        self.ice_answers: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self.reports = StreamReports(showme, lambda room: self.rooms.get(room.invite_id) is room)

    # ---- joining and leaving -------------------------------------------------------------------

    def room_for(self, organisation_id: str, invite_id: str, expires_at: datetime) -> Room:
        now = utcnow()
        for gone in [i for i, until in self.ended.items() if until <= now]:
            del self.ended[gone]
        if invite_id in self.ended:
            raise Refusal(4410, "link_ended", "The emergency service has ended this session.")
        room = self.rooms.get(invite_id)
        if room is None:
            room = Room(invite_id, organisation_id, expires_at)
            delay = max(0.0, (expires_at - utcnow()).total_seconds())
            room.expiry = asyncio.get_running_loop().call_later(
                delay, lambda: self.showme.spawn(self.end(invite_id, "link_expired"), "expire")
            )
            self.rooms[invite_id] = room
        return room

    async def join(self, peer: Peer, room: Room) -> bool:
        """Seat ``peer`` and say whether the other side is present: a newer console takes over,
        the phone that holds the invite replaces its older socket, another phone is refused and
        the console asked to allow it. Until :meth:`welcome`, ``peer`` is sent nothing."""
        if peer.role == "caller":
            await self._seat_caller(peer, room)
        else:
            await self._seat_console(peer, room)
        return self.peer_present(peer)

    async def welcome(self, peer: Peer, welcome: dict[str, Any]) -> None:
        """Send ``welcome``, then what others said to ``peer`` meanwhile, in order."""
        await peer.send(welcome)
        while peer.held:
            await peer.send(peer.held.pop(0))
        peer.welcomed = True

    async def _tell(self, peer: Peer, message: dict[str, Any]) -> None:
        if peer.welcomed:
            await peer.send(message)
        elif len(peer.held) < MAX_HELD_MESSAGES:
            peer.held.append(message)
        else:
            log.warning("message dropped before a welcome", role=peer.role, type=message["type"])

    async def _seat_caller(self, peer: Peer, room: Room) -> None:
        try:
            holds = await devices.holds(
                self.showme, room.organisation_id, room.invite_id, peer.device, peer.token_hash
            )
        except ShowMeError as exc:
            raise link_replaced() from exc
        # The checks below and the seat itself run without a pause: nothing can slip in between.
        if self.relinked.get(room.invite_id, -1) > peer.admitted:
            raise link_replaced()
        if self.rooms.get(room.invite_id) is not room:
            raise Refusal(4410, "link_ended", "The emergency service has ended this session.")
        if not holds:
            if peer.device is not None:
                await self.device_request(room.invite_id, peer.device)
            raise Refusal(4409, "another_device", devices.WAITING_MESSAGE)
        self.requests.get(room.invite_id, {}).pop(peer.device or "", None)
        old = room.caller
        room.caller = peer
        if old is not None:
            await old.close(4001, "replaced", "This page was opened again elsewhere.")
            if room.console is not None:
                await self._tell(room.console, {"type": "peer", "present": False})
        if room.console is not None:
            await self._tell(room.console, {"type": "peer", "present": True})

    async def _seat_console(self, peer: Peer, room: Room) -> None:
        old = room.console
        room.console = peer
        if old is not None:
            await self._tell(old, {"type": "taken-over"})
            await old.close(4000, "taken_over", "Another console took over this stream.")
        room.first_frame_seen = False
        # Phones that knocked while no console (or another one) was there are asked about again.
        for device in self.requests.get(room.invite_id, {}):
            await self._tell(peer, {"type": "device-request", "device": device})
        if room.caller is not None:
            await self._tell(room.caller, {"type": "peer", "present": True})

    async def leave(self, peer: Peer) -> None:
        room = self.rooms.get(peer.invite_id)
        if room is None:
            return
        if peer.role == "caller" and room.caller is peer:
            room.caller = None
            if room.console is not None:
                await self._tell(room.console, {"type": "peer", "present": False})
        elif peer.role == "console" and room.console is peer:
            room.console = None
            if room.caller is not None:
                await self._tell(room.caller, {"type": "peer", "present": False})

    async def end(self, invite_id: str, code: str = "link_ended") -> None:
        """The invite ended or expired: tell both sides and close their sockets."""
        self._forget(invite_id)
        room = self.rooms.pop(invite_id, None)
        if room is None:
            if code == "link_ended":
                self.ended[invite_id] = utcnow() + timedelta(days=1)
            return
        self.ended[invite_id] = room.expires_at
        for timer in (room.expiry, room.flush):
            if timer is not None:
                timer.cancel()
        if room.state not in ("idle", "ended"):
            # The session ends with its link: recorded, and plugins hear its outcome.
            self.showme.spawn(self.reports.ended_with_link(room, code), name="stream-hook")
        message = (
            "The emergency service has ended this session."
            if code == "link_ended"
            else "This link has expired."
        )
        for peer in (room.caller, room.console):
            if peer is not None:
                with contextlib.suppress(Exception):
                    await self._tell(peer, {"type": "ended"})
                    await peer.close(4410, code, message)

    def _forget(self, invite_id: str) -> None:
        self.requests.pop(invite_id, None)
        self.relinked.pop(invite_id, None)
        for role in ("caller", "console"):
            self.ice_answers.pop((invite_id, role), None)

    async def relinked_invite(self, invite_id: str) -> None:
        """A resend minted a new link and forgot the phone: the old link's socket goes at once
        (its token no longer opens anything), and the phones that knocked are forgotten."""
        self.relinks += 1
        self.relinked[invite_id] = self.relinks
        self.requests.pop(invite_id, None)
        self.ice_answers.pop((invite_id, "caller"), None)
        room = self.rooms.get(invite_id)
        if room is None or room.caller is None:
            return
        caller, room.caller = room.caller, None
        refusal = link_replaced()
        await caller.close(refusal.close_code, refusal.code, refusal.message)
        if room.console is not None:
            await self._tell(room.console, {"type": "peer", "present": False})

    def peer_present(self, peer: Peer) -> bool:
        room = self.rooms.get(peer.invite_id)
        if room is None:
            return False
        other = room.console if peer.role == "caller" else room.caller
        return other is not None

    async def close_all(self) -> None:
        for invite_id in list(self.rooms):
            room = self.rooms.pop(invite_id)
            for timer in (room.expiry, room.flush):
                if timer is not None:
                    timer.cancel()
            for peer in (room.caller, room.console):
                if peer is not None:
                    with contextlib.suppress(Exception):
                        await peer.close(1001, "going_away", "The service is restarting.")

    # ---- another phone -------------------------------------------------------------------------

    async def device_request(self, invite_id: str, device: str) -> None:
        """Another phone was refused (a signaling hello, an open, a picture): the console is
        asked once per phone, and again whenever a console takes its seat."""
        now = time.monotonic()
        if invite_id not in self.requests and len(self.requests) >= 1000:
            self._prune_requests(now)
        waiting = self.requests.setdefault(invite_id, {})
        if device in waiting:
            return
        if len(waiting) >= MAX_DEVICE_REQUESTS:
            # The first phones keep their place: someone cycling device ids with a leaked link
            # cannot push the real caller's phone out (a resend starts afresh).
            return
        waiting[device] = now
        room = self.rooms.get(invite_id)
        if room is not None and room.console is not None:
            await self._tell(room.console, {"type": "device-request", "device": device})

    def _prune_requests(self, now: float) -> None:
        for invite_id in list(self.requests):
            waiting = self.requests[invite_id]
            for device in [d for d, at in waiting.items() if now - at > DEVICE_REQUEST_SECONDS]:
                del waiting[device]
            if not waiting:
                del self.requests[invite_id]

    async def _allow_device(self, console: Peer, room: Room, device: Any) -> None:
        waiting = self.requests.get(room.invite_id, {})
        if device is None and waiting:
            device = next(reversed(waiting))
        if not isinstance(device, str) or device not in waiting:
            return  # not (or no longer) asking: nothing to allow
        await devices.allow(
            self.showme, room.organisation_id, room.invite_id, device, console.actor
        )
        waiting.pop(device, None)
        caller = room.caller
        if caller is not None and caller.device != device:
            room.caller = None
            await caller.close(4001, "replaced", "The dispatcher allowed another phone.")
            if room.console is not None:
                await self._tell(room.console, {"type": "peer", "present": False})

    # ---- ICE -----------------------------------------------------------------------------------

    async def ice_for(self, peer: Peer) -> dict[str, Any]:
        """Fresh ICE servers for one socket, as ``RTCConfiguration`` takes them. Asked again
        within 2 s, the socket gets the same ones; over the provider call limits, the latest
        answer for its room and role (a restart still gets servers, a flood costs nothing)."""
        now = time.monotonic()
        if peer.ice is not None and now - peer.ice_at < ICE_REUSE_SECONDS:
            return peer.ice
        try:
            with self.showme.rate_limits.reserve(self._ice_limits(peer)):
                ice = await self._issue_ice(peer)
        except TooBusy:
            ice = self._recent_ice(peer, now)
        else:
            self.ice_answers[(peer.invite_id, peer.role)] = (ice, now)
        peer.ice = ice
        peer.ice_at = now
        return ice

    def _ice_limits(self, peer: Peer) -> list[tuple[str, list[tuple[int, float]], str, str]]:
        return [
            (f"ice-invite:{peer.invite_id}", ICE_CALLS_PER_INVITE, "ICE requests", "this session"),
            (
                f"ice-org:{peer.organisation_id}",
                ICE_CALLS_PER_ORGANISATION,
                "ICE requests",
                "this organisation",
            ),
        ]

    def _recent_ice(self, peer: Peer, now: float) -> dict[str, Any]:
        answer = self.ice_answers.get((peer.invite_id, peer.role))
        if answer is not None:
            ice, at = answer
            ttl = ice.get("ttl")
            if ttl is None:
                return ice
            left = math.floor(ttl - (now - at))
            if left > 0:
                return {**ice, "ttl": left}
        log.warning("ICE provider calls over the limit", invite_id=peer.invite_id, role=peer.role)
        policy = self.showme.settings.settings_for("core").get("ice_transport_policy", "all")
        return {"iceServers": [], "iceTransportPolicy": policy, "ttl": None}

    async def _issue_ice(self, peer: Peer) -> dict[str, Any]:
        core = self.showme.settings.settings_for("core")
        policy = core.get("ice_transport_policy", "all")
        try:
            config = await self.showme.ice.ice_servers(
                IceRequest(peer.organisation_id, peer.invite_id, peer.role, peer.id)
            )
        except Exception as exc:
            # The page still gets an answer: host candidates may do, and stills always do.
            log.warning("ICE provider failed", provider=self.showme.ice.name, error=str(exc))
            self.showme.metrics.ice_failures.labels(self.showme.ice.name).inc()
            config = IceConfig(ice_servers=[])
        return {"iceServers": config.ice_servers, "iceTransportPolicy": policy, "ttl": config.ttl}

    # ---- messages ------------------------------------------------------------------------------

    async def handle(self, peer: Peer, message: dict[str, Any]) -> None:
        """One message from ``peer``, already parsed; raises :class:`Refusal` for a bad one."""
        kind = message.get("type")
        room = self.rooms.get(peer.invite_id)
        if room is None:
            raise Refusal(4410, "link_ended", "This session has ended.")
        if peer is not (room.caller if peer.role == "caller" else room.console):
            raise Refusal(4000, "taken_over", "This socket no longer has a seat in the session.")
        if room.expires_at <= utcnow():
            await self.end(peer.invite_id, "link_expired")
            return
        if kind == "ice-request":
            await peer.send({"type": "ice", "ice": await self.ice_for(peer)})
        elif kind == "report":
            await self.reports.handle(peer, room, message)
        elif kind == "allow-device" and peer.role == "console":
            await self._allow_device(peer, room, message.get("device"))
        elif kind in (CALLER_RELAYS if peer.role == "caller" else CONSOLE_RELAYS):
            validate_relayed(peer.role, message)
            other = room.console if peer.role == "caller" else room.caller
            if other is not None:
                await self._tell(other, message)
        else:
            raise bad_message(f"unexpected message type {kind!r} from a {peer.role}")
