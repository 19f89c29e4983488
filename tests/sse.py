"""An event-feed client over its own TCP connection, light enough to hold a thousand at once.

Used by the feed tests and ``bench/feeds.py`` against a real server on loopback: it sends one
``GET /api/v1/events``, reads the answer's head, then the chunked body as Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class SseEvent:
    """One event of the stream: ``event`` is ``message`` unless the server named it."""

    event: str
    data: dict[str, Any]
    id: int | None = None
    received_at: float = field(default_factory=time.monotonic)


class SseParser:
    """Server-Sent Events from the bytes of a body, as they arrive; comments are counted."""

    def __init__(self) -> None:
        self._buffer = b""
        self.keep_alives = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_event(self) -> SseEvent | None:
        """The next complete event received so far, if any."""
        while True:
            block, separator, rest = self._buffer.partition(b"\n\n")
            if not separator:
                return None
            self._buffer = rest
            event = self._parse(block.decode())
            if event is not None:
                return event

    def _parse(self, block: str) -> SseEvent | None:
        name, data, event_id = "message", "", None
        for line in block.split("\n"):
            if line.startswith(":"):
                if line.startswith(": keep-alive"):
                    self.keep_alives += 1
            elif line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
            elif line.startswith("id: "):
                event_id = int(line[len("id: ") :])
        if not data:
            return None
        return SseEvent(name, json.loads(data), event_id)


class FeedConnection:
    """One open ``GET /api/v1/events`` (HTTP/1.1, chunked) on loopback."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ended = False
        self.parser = SseParser()
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    async def open(cls, base_url: str, headers: dict[str, str], query: str = "") -> FeedConnection:
        """Connect and read the answer's head (the body is then read with :meth:`next_event`)."""
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        connection = cls(reader, writer)
        target = "/api/v1/events" + (f"?{query}" if query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = await reader.readline()
        connection.status = int(status_line.split()[1])
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            connection.headers[name.strip().lower()] = value.strip()
        return connection

    async def body(self) -> bytes:
        """The whole body of a finished answer (a refusal)."""
        length = self.headers.get("content-length")
        if length is not None:
            return await self._reader.readexactly(int(length))
        chunks = []
        while chunk := await self._chunk():
            chunks.append(chunk)
        return b"".join(chunks)

    @property
    def keep_alives(self) -> int:
        return self.parser.keep_alives

    async def next_event(self) -> SseEvent | None:
        """The next event, or None once the server closed the stream."""
        while True:
            event = self.parser.next_event()
            if event is not None or self._ended:
                return event
            chunk = await self._chunk()
            if not chunk:
                self._ended = True
            self.parser.feed(chunk)

    async def _chunk(self) -> bytes:
        """The next chunk of the body; b"" at its end or when the connection closed."""
        try:
            size_line = await self._reader.readline()
            if not size_line:
                return b""
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                await self._reader.readline()
                return b""
            data = await self._reader.readexactly(size)
            await self._reader.readexactly(2)
        except (asyncio.IncompleteReadError, ConnectionError):
            return b""
        return data

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
