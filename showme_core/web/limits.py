"""Bounds on how long a request's body may take (``docs/operations.md``, "Limits").

A body must keep arriving: after a short grace, at an average of at least
``body_min_bytes_per_second``, and all of it within ``body_timeout_seconds``. Otherwise reading
it fails with ``408 request_too_slow`` and the connection is closed, so a client trickling one
byte every few seconds cannot hold an upload slot, a worker or a connection for long. The clock
runs only while the app waits for the body: time the app spends elsewhere is not the client's.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from showme_core.errors import RequestTooSlow


@dataclass(frozen=True)
class BodyPace:
    """How a request body must arrive."""

    deadline: float  # seconds of waiting for the whole body
    grace: float  # seconds before the average rate counts
    min_rate: int  # bytes per second, on average, after the grace

    def due(self, received: int) -> float:
        """How many seconds of waiting a body that has ``received`` bytes may reach."""
        by_rate = self.grace + received / self.min_rate if self.min_rate > 0 else math.inf
        return min(self.deadline, by_rate)


# Methods whose requests carry a body the app reads; others pass through unpaced (a GET's stray
# body is never read, and the event feed's disconnect listener must not fail on one).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def paced(receive: Receive, pace: BodyPace) -> Receive:
    """``receive``, failing with :class:`RequestTooSlow` when the body falls behind ``pace``."""
    loop = asyncio.get_running_loop()
    waited = 0.0
    received = 0
    complete = False

    async def receive_paced() -> Message:
        nonlocal waited, received, complete
        if complete:
            return await receive()  # the body is in: what follows is a disconnect, unbounded
        left = pace.due(received) - waited
        if left <= 0:
            raise _too_slow()
        started = loop.time()
        try:
            message = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            raise _too_slow() from None
        finally:
            waited += loop.time() - started
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            complete = not message.get("more_body", False)
        else:
            complete = True
        return message

    return receive_paced


def _too_slow() -> RequestTooSlow:
    return RequestTooSlow(
        "The request arrived too slowly and was stopped; it can be sent again.",
    )


async def respond(
    send: Send, status: int, body: bytes, content_type: str, *headers: tuple[bytes, bytes]
) -> None:
    """A whole answer in raw ASGI, for what is decided before any route runs."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def too_large_head(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request whose head was over the bound (see :mod:`.server`)."""
    body = b"The request's headers are too big.\n"
    await respond(send, 431, body, "text/plain; charset=utf-8", (b"connection", b"close"))
