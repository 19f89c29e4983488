"""A caller's phone for tests, in-process: it opens its link, sends pictures and goes live
through signaling, by the same HTTP routes and WebSocket the caller page uses.

httpx cannot open a WebSocket against an ASGI app, so :class:`AsgiWebSocket` speaks the ASGI
WebSocket protocol to the app directly, with a deadline on every wait: a test that forgets to
close one still ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx

WAIT_SECONDS = 5.0


class SocketClosed(Exception):
    """The service closed the WebSocket (``code``, ``reason``)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


class AsgiWebSocket:
    """One WebSocket to an in-process ASGI app."""

    def __init__(self, app: Any, path: str, headers: dict[str, str]) -> None:
        self._app = app
        self._path = path
        self._headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": self._path,
            "raw_path": self._path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"showme.test"), *self._headers],
            "client": ("127.0.0.1", 1),
            "server": ("showme.test", 80),
            "subprotocols": [],
        }
        self._task = asyncio.get_running_loop().create_task(
            self._app(scope, self._to_app.get, self._from_app.put), name="test-websocket"
        )
        await self._to_app.put({"type": "websocket.connect"})
        first = await asyncio.wait_for(self._from_app.get(), WAIT_SECONDS)
        if first["type"] == "websocket.close":
            raise SocketClosed(first.get("code", 1000), first.get("reason", ""))
        assert first["type"] == "websocket.accept", first

    async def send(self, message: dict[str, Any]) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive(self, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
        """The next message the service sends; :class:`SocketClosed` once it closed."""
        message = await asyncio.wait_for(self._from_app.get(), timeout)
        if message["type"] == "websocket.close":
            raise SocketClosed(message.get("code", 1000), message.get("reason", ""))
        found: dict[str, Any] = json.loads(message["text"])
        return found

    async def close(self) -> None:
        await self._to_app.put({"type": "websocket.disconnect", "code": 1000})
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, WAIT_SECONDS)
            if not self._task.done():
                self._task.cancel()


class CallerPhone:
    """A phone that received ``link`` by SMS (``https://host/c/#<token>``)."""

    def __init__(self, app: Any, link: str, device: str | None = None) -> None:
        self.app = app
        self.token = link.split("#", 1)[1]
        self.device = device or secrets.token_urlsafe(12)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://showme.test",
            headers={"X-ShowMe-Link": self.token, "X-ShowMe-Device": self.device},
        )

    async def open(self) -> dict[str, Any]:
        """What the caller page does first: present the link (the invite is now opened)."""
        async with self._client() as client:
            answer = await client.post("/api/v1/caller/open")
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    async def upload(
        self,
        data: bytes,
        *,
        kind: str = "picture",
        key: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a picture as the caller page does (multipart, with an Idempotency-Key)."""
        form = {**(fields or {}), **({"kind": kind} if kind != "picture" else {})}
        async with self._client() as client:
            return await client.post(
                "/api/v1/caller/media",
                headers={"Idempotency-Key": key or secrets.token_urlsafe(16)},
                files={"picture": ("picture.jpg", data, "image/jpeg")},
                data=form,
            )

    @contextlib.asynccontextmanager
    async def signaling(self) -> AsyncIterator[AsgiWebSocket]:
        """The live-video socket after its ``hello`` (the first message read is ``welcome``, or
        a ``refused`` one); closed afterwards."""
        socket = AsgiWebSocket(self.app, "/ws/signal", {})
        await socket.connect()
        try:
            await socket.send(
                {"type": "hello", "role": "caller", "token": self.token, "device": self.device}
            )
            yield socket
        finally:
            await socket.close()

    @contextlib.asynccontextmanager
    async def live(self, route: str = "relay") -> AsyncIterator[AsgiWebSocket]:
        """Live, as far as the service can tell: welcomed, camera granted, connected. Leaving
        the block stops the video (``stream.ended``)."""
        async with self.signaling() as socket:
            welcome = await socket.receive()
            assert welcome["type"] == "welcome", welcome
            await socket.send({"type": "report", "event": "camera", "result": "granted"})
            await socket.send({"type": "report", "event": "connected", "route": route})
            yield socket
            await socket.send({"type": "report", "event": "stopped"})
            # The socket handles messages in order: an answer to this one means those are done.
            await socket.send({"type": "ice-request"})
            while (await socket.receive())["type"] != "ice":
                pass
