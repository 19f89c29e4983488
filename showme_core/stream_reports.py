"""What the pages report about a live stream, turned into events, audit records and metrics
(``docs/live.md``, "Reports"): at most one event and one audit row per kind per room per 10 s,
whatever the pages send and in whatever order."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from showme_core import audit
from showme_core.providers import StreamChange
from showme_core.signaling_messages import bad_message

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.signaling import Peer, Room

REPORT_INTERVAL_SECONDS = 10.0
CALLER_REPORTS = {"camera", "connected", "stills", "failed", "stopped"}
CONSOLE_REPORTS = {"first-frame"}


@dataclass
class StreamRecord:
    """A stream event waiting for its kind's window: written when the window opens, unless a
    newer state replaced it or it says what was last written."""

    type: str
    stream: dict[str, Any]
    actor: str
    count: Callable[[], None]


class StreamReports:
    """Reports of the rooms of one instance; ``is_open(room)`` says whether a room still is."""

    def __init__(self, showme: ShowMe, is_open: Callable[[Room], bool]) -> None:
        self._showme = showme
        self._open = is_open
        # One queue per invite: a plugin slow on one session does not hold another's news.
        self._telling: dict[str, _Queue] = {}

    async def handle(self, peer: Peer, room: Room, message: dict[str, Any]) -> None:
        """One ``report`` message from ``peer``; raises :class:`Refusal` for a bad one."""
        event = message.get("event")
        allowed = CALLER_REPORTS if peer.role == "caller" else CONSOLE_REPORTS
        if event not in allowed:
            raise bad_message(f"unknown report {event!r}")
        metrics = self._showme.metrics
        stream: dict[str, Any] = {"invite_id": room.invite_id}
        if event == "camera":
            result = message.get("result")
            if result not in ("granted", "refused", "unavailable"):
                raise bad_message("camera result must be granted, refused or unavailable")
            if result == "granted":
                room.camera_granted_at = time.monotonic()
                if room.state in ("idle", "ended") or room.state.startswith("camera-"):
                    await self._record(
                        room,
                        "requested",
                        StreamRecord(
                            "stream.requested",
                            {**stream, "state": "requested"},
                            peer.actor,
                            metrics.stream_camera.labels(result).inc,
                        ),
                    )
            elif room.state != f"camera-{result}":
                await self._record(
                    room,
                    f"camera-{result}",
                    StreamRecord(
                        "stream.failed",
                        {**stream, "state": "failed", "reason": result},
                        peer.actor,
                        metrics.stream_camera.labels(result).inc,
                    ),
                )
        elif event == "connected":
            route = message.get("route")
            if route not in ("direct", "relay"):
                raise bad_message("route must be direct or relay")
            if room.state != "connected" or room.route != route:
                room.route = route
                await self._record(
                    room,
                    "connected",
                    StreamRecord(
                        "stream.connected",
                        {**stream, "state": "connected", "route": route},
                        peer.actor,
                        metrics.stream_connected.labels(route).inc,
                    ),
                )
        elif event == "stills":
            if room.state != "stills":
                await self._record(
                    room,
                    "stills",
                    StreamRecord(
                        "stream.stills",
                        {**stream, "state": "stills"},
                        peer.actor,
                        metrics.stream_stills.inc,
                    ),
                )
        elif event == "failed":
            reason = message.get("reason")
            if not isinstance(reason, str) or len(reason) > 200:
                raise bad_message("reason must be a text of at most 200 characters")
            await self._record(
                room,
                "failed",
                StreamRecord(
                    "stream.failed",
                    {**stream, "state": "failed", "reason": reason},
                    peer.actor,
                    metrics.stream_failed.inc,
                ),
            )
        elif event == "stopped":
            if room.state not in ("idle", "ended"):
                await self._record(
                    room,
                    "ended",
                    StreamRecord(
                        "stream.ended", {**stream, "state": "ended"}, peer.actor, lambda: None
                    ),
                )
        elif event == "first-frame" and not room.first_frame_seen:
            room.first_frame_seen = True
            if room.camera_granted_at is not None:
                metrics.stream_first_frame.observe(time.monotonic() - room.camera_granted_at)

    async def _record(self, room: Room, state: str, record: StreamRecord) -> None:
        """The stream's state changed: written now, or when its kind's window opens again."""
        room.state = state
        room.latest = record
        await self._write_latest(room)

    async def _write_latest(self, room: Room) -> None:
        """Write the room's latest stream state, at most once per kind per 10 s, whatever the
        pages send and in whatever order: a state held back is written when its window opens
        unless a newer one replaced it, so the feed always ends on the stream's real state."""
        record = room.latest
        if record is None or not self._open(room):
            return
        if room.written == (record.type, record.stream):
            room.latest = None  # back to what was last written: nothing to say
            return
        now = time.monotonic()
        wait = room.written_at.get(record.type, -math.inf) + REPORT_INTERVAL_SECONDS - now
        if wait > 0:
            if room.flush is not None:
                room.flush.cancel()
            room.flush = asyncio.get_running_loop().call_later(
                wait, lambda: self._showme.spawn(self._write_latest(room), "stream-report")
            )
            return
        # Decided before the first pause, so a concurrent report sees this write as done.
        room.latest = None
        room.written = (record.type, record.stream)
        room.written_at[record.type] = now
        record.count()
        await self._event(room, record)

    async def _event(self, room: Room, record: StreamRecord) -> None:
        change = _change(room, record)
        async with self._showme.transaction() as tx:
            await tx.event(
                room.organisation_id, record.type, {"stream": record.stream}, room.invite_id
            )
            await audit.record(
                tx.conn,
                organisation_id=room.organisation_id,
                actor=record.actor,
                action=record.type,
                subject=room.invite_id,
                **{k: v for k, v in record.stream.items() if k not in ("invite_id", "state")},
            )
        self._showme.spawn(self._told(change), "stream-hook")

    async def ended_with_link(self, room: Room, reason: str) -> None:
        """The invite ended or expired while its session was live: the session ended too, and
        the record says so (``stream.ended`` with ``reason``), as if the caller had stopped."""
        room.state = "ended"
        room.latest = None
        await self._event(
            room,
            StreamRecord(
                "stream.ended",
                {"invite_id": room.invite_id, "state": "ended", "reason": reason},
                "system",
                lambda: None,
            ),
        )

    async def _told(self, change: StreamChange) -> None:
        """Tell plugins (``showme_on_stream``), after the change is committed, one change after
        the other in the order they happened, per invite (the lock is taken before anything
        awaits, and asyncio hands it over first come, first served)."""
        from showme_core.invites import get_invite

        queue = self._telling.setdefault(change.invite_id, _Queue())
        queue.users += 1
        try:
            async with queue.lock:
                async with self._showme.db.read() as db:
                    invite = await get_invite(db, change.organisation_id, change.invite_id)
                await self._showme.plugins.stream_changed(self._showme, invite, change)
        finally:
            queue.users -= 1
            if not queue.users:
                del self._telling[change.invite_id]


@dataclass
class _Queue:
    """The changes of one invite waiting to be told, in order (asyncio's lock is first come,
    first served)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


# Best first: a session's outcome is the best rung it reached.
_RUNGS = ("video", "stills", "failed", "none")


def _change(room: Room, record: StreamRecord) -> StreamChange:
    """What a written stream event means to ``showme_on_stream``, the room's best rung kept."""
    stream = record.stream
    base = {"organisation_id": room.organisation_id, "invite_id": room.invite_id}
    if record.type == "stream.requested":
        room.best = "none"
        return StreamChange(**base, change="started")
    if record.type == "stream.ended":
        return StreamChange(**base, change="ended", outcome=room.best)
    rung = {"stream.connected": "video", "stream.stills": "stills"}.get(record.type, "failed")
    if _RUNGS.index(rung) < _RUNGS.index(room.best):
        room.best = rung
    return StreamChange(
        **base, change="rung", rung=rung, route=stream.get("route"), reason=stream.get("reason")
    )
