"""``/ws/signal``: the WebSocket of live video signaling (protocol: ``docs/live.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from showme_core import devices, invites, tokens
from showme_core.errors import ShowMeError
from showme_core.organisations import get_organisation
from showme_core.signaling import HELLO_TIMEOUT_SECONDS, MAX_MESSAGE_BYTES, Peer
from showme_core.signaling_messages import Refusal, bad_message
from showme_core.web.auth import allowed_origins, authenticate, showme_of

log = structlog.get_logger("showme.signaling")
# Close codes for what the HTTP API answers with a status (docs/live.md, "Refusals").
CLOSE_FOR_STATUS = {401: 4401, 403: 4403, 404: 4404, 410: 4410}


async def signal(ws: WebSocket) -> None:
    showme = showme_of(ws)
    await ws.accept()
    peer: Peer | None = None
    try:
        hello = await _receive(ws, timeout=HELLO_TIMEOUT_SECONDS)
        if hello.get("type") != "hello":
            raise bad_message("the first message must be hello")
        peer, room = await _admit(ws, hello)
        # The seat first, ICE servers after: a refused socket costs no provider call. What the
        # other side sends meanwhile (an offer) waits for the welcome, which carries the servers.
        present = await showme.hub.join(peer, room)
        ice = await showme.hub.ice_for(peer)
        await showme.hub.welcome(
            peer,
            {
                "type": "welcome",
                "role": peer.role,
                "invite_id": peer.invite_id,
                "peer": present,
                "ice": ice,
                **({"video": room_video(ws, peer)} if peer.role == "caller" else {}),
            },
        )
        showme.metrics.signal_sockets.labels(peer.role).inc()
        try:
            while True:
                message = await _receive(ws)
                if not peer.allow_message():
                    raise Refusal(4429, "too_many_messages", "Too many messages; slow down.")
                await showme.hub.handle(peer, message)
        finally:
            showme.metrics.signal_sockets.labels(peer.role).dec()
    except Refusal as refusal:
        await _refuse(ws, refusal)
    except WebSocketDisconnect:
        pass
    except Exception:
        # A fault of ours must not leave the page hanging on a half-open socket.
        log.exception("signaling socket failed", role=peer.role if peer else None)
        await _refuse(ws, Refusal(1011, "internal_error", "Something went wrong; reconnect."))
    finally:
        if peer is not None:
            await showme.hub.leave(peer)


def room_video(ws: WebSocket, peer: Peer) -> dict[str, Any]:
    """The organisation's camera policy, read when the caller was admitted."""
    video: dict[str, Any] = ws.scope.get("state", {}).get("showme_video", {})
    return video


async def _receive(ws: WebSocket, timeout: float | None = None) -> dict[str, Any]:
    try:
        if timeout is None:
            text = await ws.receive_text()
        else:
            text = await asyncio.wait_for(ws.receive_text(), timeout)
    except TimeoutError as exc:
        raise bad_message("no hello within 10 s") from exc
    except KeyError as exc:  # a binary frame: Starlette finds no "text" in it
        raise bad_message("messages are JSON text") from exc
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        raise Refusal(1009, "too_large", f"messages are at most {MAX_MESSAGE_BYTES} bytes")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested too deep
        raise bad_message("messages are JSON objects") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise bad_message("messages are JSON objects with a type")
    return message


async def _admit(ws: WebSocket, hello: dict[str, Any]) -> tuple[Peer, Any]:
    """Check who says hello, and against which live invite; nothing is relayed before this."""
    showme = showme_of(ws)
    role = hello.get("role")
    # Before the link is checked: a resend after this point keeps the socket out of its seat.
    admitted = showme.hub.relinks

    async def send(message: dict[str, Any]) -> None:
        if ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.send_text(json.dumps(message, separators=(",", ":")))

    async def close(code: int, reason: str, message: str) -> None:
        await _refuse(ws, Refusal(code, reason, message))

    try:
        if role == "caller":
            if set(hello) - {"type", "role", "token", "device"}:
                raise bad_message("a caller's hello has token and device")
            token, device = hello.get("token"), hello.get("device")
            if (
                not isinstance(token, str)
                or not isinstance(device, str)
                or not devices.DEVICE_ID.match(device)
            ):
                raise bad_message("a caller's hello needs its link token and a device id")
            async with showme.db.read() as db:
                invite = await invites.invite_for_token(db, token)
                org = await get_organisation(db, invite.organisation_id)
            ws.scope.setdefault("state", {})["showme_video"] = {
                "audio": org.video_audio,
                "facing": org.video_facing,
            }
            peer = Peer(
                "caller",
                invite.organisation_id,
                invite.id,
                f"caller:{invite.id}",
                send,
                close,
                device=devices.fingerprint(device, invite.id),
                token_hash=tokens.hash_token(token),
                admitted=admitted,
            )
        elif role == "console":
            if set(hello) - {"type", "role", "invite_id"} or not isinstance(
                hello.get("invite_id"), str
            ):
                raise bad_message("a console's hello has the invite_id")
            origin = ws.headers.get("origin")
            if origin is None or origin.lower() not in allowed_origins(ws):
                raise Refusal(4403, "origin_refused", "This socket did not come from the console.")
            principal = await authenticate(ws)
            if principal.user is None:
                raise Refusal(4401, "not_authenticated", "Sign in to the console first.")
            async with showme.db.read() as db:
                invite = await invites.get_invite(db, principal.organisation_id, hello["invite_id"])
            invites.require_live(invite)
            peer = Peer("console", invite.organisation_id, invite.id, principal.actor, send, close)
        else:
            raise bad_message("role must be caller or console")
    except ShowMeError as exc:
        close_code = CLOSE_FOR_STATUS.get(exc.status)
        if close_code is None:
            raise bad_message(exc.message) from exc
        raise Refusal(close_code, exc.code, exc.message) from exc
    room = showme.hub.room_for(invite.organisation_id, invite.id, invite.expires_at)
    return peer, room


async def _refuse(ws: WebSocket, refusal: Refusal) -> None:
    if ws.application_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.send_text(
            json.dumps({"type": "refused", "code": refusal.code, "message": refusal.message})
        )
        await ws.close(refusal.close_code, refusal.code)
