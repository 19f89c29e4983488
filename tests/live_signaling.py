"""Signaling clients for tests against a real server: a PSAP with a signed-in dispatcher, caller
and console sockets, and readers for what a socket receives."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, ClassVar

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import LiveServer

PASSWORD = "a long dispatcher password"
OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"}


class Psap:
    made: ClassVar[list[Psap]] = []

    def __init__(self, server: LiveServer, slug: str) -> None:
        Psap.made.append(self)
        self.server = server
        self.slug = slug
        self.email = f"anna@{slug}.test"
        server.cli("org", "create", "--slug", slug, "--name", f"PSAP {slug}", "--region", "BE")
        server.cli(
            "user",
            "create",
            "--org",
            slug,
            "--email",
            self.email,
            "--name",
            "Anna",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        self.http = httpx.Client(base_url=server.url, headers={"Origin": server.url})
        signed_in = self.http.post(
            "/api/v1/session", json={"email": self.email, "password": PASSWORD}
        )
        assert signed_in.status_code == 200
        self.user_id: str = signed_in.json()["user"]["id"]

    @property
    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())

    def invite(self, send_sms: bool = True) -> tuple[str, str]:
        created = self.http.post(
            "/api/v1/invites", json={"phone": "+32470123456", "send_sms": send_sms}
        )
        assert created.status_code == 201
        return created.json()["id"], created.json()["link"].split("#", 1)[1]


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/ws/signal"


@asynccontextmanager
async def connect(server: LiveServer, **headers: str) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(
        ws_url(server), additional_headers=headers, open_timeout=10
    ) as ws:
        yield ws


async def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def refused(ws: ClientConnection) -> tuple[str, int | None]:
    """Everything the socket receives until it closes must be one refusal."""
    message = await receive(ws)
    assert message["type"] == "refused", message
    with pytest.raises(websockets.ConnectionClosed):
        await receive(ws)
    assert ws.close_code is not None
    return message["code"], ws.close_code


async def caller(server: LiveServer, token: str, device: str = "phone-one-device") -> Any:
    ws = await websockets.connect(ws_url(server), open_timeout=10)
    await ws.send(json.dumps({"type": "hello", "role": "caller", "token": token, "device": device}))
    return ws


async def console(psap: Psap, invite_id: str, origin: str | None = None) -> Any:
    ws = await websockets.connect(
        ws_url(psap.server),
        additional_headers={"Origin": origin or psap.server.url, "Cookie": psap.cookie},
        open_timeout=10,
    )
    await ws.send(json.dumps({"type": "hello", "role": "console", "invite_id": invite_id}))
    return ws


def stream_events(server: LiveServer, invite_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The stream events of one invite (type, data, and when, in seconds), and its stream audit
    records' actions, oldest first, read from the server's store."""
    with sqlite3.connect(server.data_dir / "showme.db") as db:
        events = db.execute(
            "SELECT type, data, created_at FROM events "
            "WHERE invite_id = ? AND type LIKE 'stream.%' ORDER BY seq",
            (invite_id,),
        ).fetchall()
        audits = db.execute(
            "SELECT action FROM audit_records WHERE subject = ? AND action LIKE 'stream.%' "
            "ORDER BY id",
            (invite_id,),
        ).fetchall()
    found = [
        {"type": kind, "data": json.loads(data), "at": datetime.fromisoformat(at).timestamp()}
        for kind, data, at in events
    ]
    return found, [row[0] for row in audits]


def closed_psaps() -> None:
    for psap in Psap.made:
        psap.http.close()
    Psap.made.clear()
