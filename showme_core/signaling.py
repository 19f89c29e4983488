"""WebRTC signaling: one room per invite, a caller and a console, messages relayed and never stored.

The transport (a WebSocket) is in :mod:`showme_core.web.signal`; this module decides who may be in
a room, what may be relayed, and what reports become events, audit records and metrics. The
protocol is written down in ``docs/live.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from showme_core import audit
from showme_core.clock import utcnow
from showme_core.providers import IceConfig, IceRequest

if TYPE_CHECKING:
    from showme_core.app import ShowMe

log = structlog.get_logger("showme.signaling")

MAX_MESSAGE_BYTES = 64 * 1024
MAX_MESSAGES_PER_SECOND = 50
HELLO_TIMEOUT_SECONDS = 10.0
MAX_SDP = 60_000
MAX_CANDIDATE = 2_000
ICE_REUSE_SECONDS = 2.0
FAILED_REPORT_SECONDS = 10.0
REPORT_INTERVAL_SECONDS = 10.0

CALLER_RELAYS = {"offer", "candidate", "status"}
CONSOLE_RELAYS = {"answer", "candidate", "control", "decoded"}
CONTROL_ACTIONS = {"switch-camera", "torch-on", "torch-off", "snapshot", "restart"}
RUNGS = {"waiting", "connecting", "video", "stills", "stopped"}
CAMERA_STATES = {"off", "granted", "refused", "unavailable"}
CALLER_REPORTS = {"camera", "connected", "stills", "failed", "stopped"}
CONSOLE_REPORTS = {"first-frame"}


class Refusal(Exception):
    """A socket is refused: it gets ``{"type": "refused", code, message}`` and this close code."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


def bad_message(message: str) -> Refusal:
    return Refusal(4400, "bad_message", message)


Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[int, str, str], Awaitable[None]]


@dataclass(eq=False)
class Peer:
    """One socket in a room."""

    role: str
    organisation_id: str
    invite_id: str
    actor: str
    send: Send
    close: Close
    device: str | None = None
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    ice: dict[str, Any] | None = None
    ice_at: float = 0.0
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
    device: str | None = None
    pending_device: str | None = None
    allowed_device: str | None = None
    camera_granted_at: float | None = None
    first_frame_seen: bool = False
    expiry: asyncio.TimerHandle | None = None
    # The stream's state as last recorded: a report that does not change it writes nothing.
    state: str = "idle"
    route: str | None = None
    failed_at: float = 0.0
    recorded_at: dict[str, float] = field(default_factory=dict)


class Hub:
    """The rooms of one service instance (a bus plugin will fan them out across instances)."""

    def __init__(self, showme: ShowMe) -> None:
        self.showme = showme
        self.rooms: dict[str, Room] = {}
        # Invites ended while a socket of theirs was being admitted: no room may be made again.
        self.ended: dict[str, datetime] = {}

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

    async def join(self, peer: Peer, room: Room) -> None:
        """Seat ``peer``: a newer console takes over, a reloaded caller replaces itself, a second
        phone is refused unless the dispatcher allowed it."""
        if peer.role == "caller":
            await self._seat_caller(peer, room)
        else:
            await self._seat_console(peer, room)

    async def _seat_caller(self, peer: Peer, room: Room) -> None:
        if room.device is not None and peer.device != room.device:
            if peer.device != room.allowed_device:
                if room.console is not None and room.pending_device != peer.device:
                    # Once per phone: it retries every few seconds until allowed.
                    await room.console.send({"type": "device-request", "device": peer.device})
                room.pending_device = peer.device
                raise Refusal(
                    4409,
                    "another_device",
                    "This link is already in use on another phone. The dispatcher can allow "
                    "this one.",
                )
            room.allowed_device = None
        old = room.caller
        room.caller = peer
        room.device = peer.device
        room.pending_device = None
        if old is not None:
            await old.close(4001, "replaced", "This page was opened again elsewhere.")
            if room.console is not None:
                await room.console.send({"type": "peer", "present": False})
        if room.console is not None:
            await room.console.send({"type": "peer", "present": True})

    async def _seat_console(self, peer: Peer, room: Room) -> None:
        old = room.console
        room.console = peer
        if old is not None:
            await old.send({"type": "taken-over"})
            await old.close(4000, "taken_over", "Another console took over this stream.")
        room.first_frame_seen = False
        if room.caller is not None:
            await room.caller.send({"type": "peer", "present": True})

    async def leave(self, peer: Peer) -> None:
        room = self.rooms.get(peer.invite_id)
        if room is None:
            return
        if peer.role == "caller" and room.caller is peer:
            room.caller = None
            if room.console is not None:
                await room.console.send({"type": "peer", "present": False})
        elif peer.role == "console" and room.console is peer:
            room.console = None
            if room.caller is not None:
                await room.caller.send({"type": "peer", "present": False})

    async def end(self, invite_id: str, code: str = "link_ended") -> None:
        """The invite ended or expired: tell both sides and close their sockets."""
        room = self.rooms.pop(invite_id, None)
        if room is None:
            if code == "link_ended":
                self.ended[invite_id] = utcnow() + timedelta(days=1)
            return
        self.ended[invite_id] = room.expires_at
        if room.expiry is not None:
            room.expiry.cancel()
        message = (
            "The emergency service has ended this session."
            if code == "link_ended"
            else "This link has expired."
        )
        for peer in (room.caller, room.console):
            if peer is not None:
                with contextlib.suppress(Exception):
                    await peer.send({"type": "ended"})
                    await peer.close(4410, code, message)

    def peer_present(self, peer: Peer) -> bool:
        room = self.rooms.get(peer.invite_id)
        if room is None:
            return False
        other = room.console if peer.role == "caller" else room.caller
        return other is not None

    async def close_all(self) -> None:
        for invite_id in list(self.rooms):
            room = self.rooms.pop(invite_id)
            if room.expiry is not None:
                room.expiry.cancel()
            for peer in (room.caller, room.console):
                if peer is not None:
                    with contextlib.suppress(Exception):
                        await peer.close(1001, "going_away", "The service is restarting.")

    # ---- ICE -----------------------------------------------------------------------------------

    async def ice_for(self, peer: Peer) -> dict[str, Any]:
        """Fresh ICE servers for one socket, as ``RTCConfiguration`` takes them. Asked again
        within 2 s, the socket gets the same ones (a provider call may cost an API request)."""
        if peer.ice is not None and time.monotonic() - peer.ice_at < ICE_REUSE_SECONDS:
            return peer.ice
        peer.ice = await self._issue_ice(peer)
        peer.ice_at = time.monotonic()
        return peer.ice

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
            await self._report(peer, room, message)
        elif kind == "allow-device" and peer.role == "console":
            device = message.get("device", room.pending_device)
            if device is not None and device == room.pending_device:
                room.allowed_device = device
        elif kind in (CALLER_RELAYS if peer.role == "caller" else CONSOLE_RELAYS):
            validate_relayed(peer.role, message)
            other = room.console if peer.role == "caller" else room.caller
            if other is not None:
                await other.send(message)
        else:
            raise bad_message(f"unexpected message type {kind!r} from a {peer.role}")

    async def _report(self, peer: Peer, room: Room, message: dict[str, Any]) -> None:
        event = message.get("event")
        allowed = CALLER_REPORTS if peer.role == "caller" else CONSOLE_REPORTS
        if event not in allowed:
            raise bad_message(f"unknown report {event!r}")
        metrics = self.showme.metrics
        stream: dict[str, Any] = {"invite_id": room.invite_id}
        if event == "camera":
            result = message.get("result")
            if result not in ("granted", "refused", "unavailable"):
                raise bad_message("camera result must be granted, refused or unavailable")
            if result == "granted":
                room.camera_granted_at = time.monotonic()
                if room.state in ("idle", "ended"):
                    metrics.stream_camera.labels(result).inc()
                    await self._record(room, peer, "requested", "stream.requested", stream)
            elif room.state != f"camera-{result}":
                metrics.stream_camera.labels(result).inc()
                room.state = f"camera-{result}"
                await self._event(
                    room, peer, "stream.failed", {**stream, "state": "failed", "reason": result}
                )
        elif event == "connected":
            route = message.get("route")
            if route not in ("direct", "relay"):
                raise bad_message("route must be direct or relay")
            if room.state != "connected" or room.route != route:
                room.route = route
                metrics.stream_connected.labels(route).inc()
                await self._record(
                    room, peer, "connected", "stream.connected", {**stream, "route": route}
                )
        elif event == "stills":
            if room.state != "stills":
                metrics.stream_stills.inc()
                await self._record(room, peer, "stills", "stream.stills", stream)
        elif event == "failed":
            reason = message.get("reason")
            if not isinstance(reason, str) or len(reason) > 200:
                raise bad_message("reason must be a text of at most 200 characters")
            now = time.monotonic()
            if room.state != "failed" or now - room.failed_at >= FAILED_REPORT_SECONDS:
                room.failed_at = now
                metrics.stream_failed.inc()
                await self._record(
                    room, peer, "failed", "stream.failed", {**stream, "reason": reason}
                )
        elif event == "stopped":
            if room.state not in ("idle", "ended"):
                await self._record(room, peer, "ended", "stream.ended", stream)
        elif event == "first-frame" and not room.first_frame_seen:
            room.first_frame_seen = True
            if room.camera_granted_at is not None:
                metrics.stream_first_frame.observe(time.monotonic() - room.camera_granted_at)

    async def _record(
        self, room: Room, peer: Peer, state: str, type_: str, stream: dict[str, Any]
    ) -> None:
        """A change of the stream's state: on the feed and in the audit log, at most once per
        10 s for each kind of change, whatever a page repeats."""
        room.state = state
        now = time.monotonic()
        if now - room.recorded_at.get(type_, -REPORT_INTERVAL_SECONDS) < REPORT_INTERVAL_SECONDS:
            return
        room.recorded_at[type_] = now
        await self._event(room, peer, type_, {**stream, "state": state})

    async def _event(self, room: Room, peer: Peer, type_: str, stream: dict[str, Any]) -> None:
        async with self.showme.transaction() as tx:
            await tx.event(room.organisation_id, type_, {"stream": stream}, room.invite_id)
            await audit.record(
                tx.conn,
                organisation_id=room.organisation_id,
                actor=peer.actor,
                action=type_,
                subject=room.invite_id,
                **{k: v for k, v in stream.items() if k not in ("invite_id", "state")},
            )


def validate_relayed(role: str, message: dict[str, Any]) -> None:
    """Only well-formed WebRTC signaling passes; anything else refuses the sender."""
    kind = message["type"]
    fields = set(message) - {"type"}
    if kind in ("offer", "answer"):
        if (
            fields != {"sdp"}
            or not isinstance(message["sdp"], str)
            or len(message["sdp"]) > MAX_SDP
        ):
            raise bad_message(f"{kind} needs an sdp text of at most {MAX_SDP} characters")
    elif kind == "candidate":
        candidate = message.get("candidate")
        if fields != {"candidate"}:
            raise bad_message("candidate needs a candidate field (an object or null)")
        if candidate is not None:
            allowed = {"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"}
            if (
                not isinstance(candidate, dict)
                or set(candidate) - allowed
                or not isinstance(candidate.get("candidate"), str)
                or len(candidate["candidate"]) > MAX_CANDIDATE
            ):
                raise bad_message("candidate must be an RTCIceCandidateInit")
    elif kind == "control":
        if fields != {"action"} or message["action"] not in CONTROL_ACTIONS:
            raise bad_message(f"control action must be one of {sorted(CONTROL_ACTIONS)}")
    elif kind == "status":
        if (
            fields - {"rung", "camera", "facing", "torch"}
            or message.get("rung", "waiting") not in RUNGS
            or message.get("camera", "off") not in CAMERA_STATES
            or message.get("facing", "environment") not in ("environment", "user")
            or not isinstance(message.get("torch", False), bool)
        ):
            raise bad_message("status has rung, camera, facing and torch, with known values")
    elif kind == "decoded" and fields:
        raise bad_message("decoded has no fields")
