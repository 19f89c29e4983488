"""Small steps the webhook tests share."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests import pictures

BASE = "/api/v1/cad-webhook"


async def eventually(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout: float, what: str
) -> Any:
    """Poll ``condition`` until it gives something true, or fail once ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def create_endpoint(admin: httpx.AsyncClient, url: str, **options: Any) -> dict[str, Any]:
    answer = await admin.post(f"{BASE}/endpoints", json={"url": url, **options})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def invite(cad: httpx.AsyncClient, incident_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"phone": "+32470123456", "send_sms": False}
    if incident_id is not None:
        body["incident_id"] = incident_id
    answer = await cad.post("/api/v1/invites", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def link_token(created: dict[str, Any]) -> str:
    return str(created["link"].split("#", 1)[1])


async def upload(client: httpx.AsyncClient, token: str, picture: bytes | None = None) -> Any:
    """A caller's picture (with a GPS position in its EXIF unless given)."""
    data = picture or pictures.jpeg(exif=pictures.gps_exif(50.8466, 4.3528, accuracy_m=12.0))
    answer = await client.post(
        "/api/v1/caller/media",
        headers={"X-ShowMe-Link": token},
        files={"picture": ("scene.jpg", data, "image/jpeg")},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def deliveries(
    admin: httpx.AsyncClient, endpoint_id: str, **query: Any
) -> list[dict[str, Any]]:
    answer = await admin.get(f"{BASE}/endpoints/{endpoint_id}/deliveries", params=query)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items
