"""kill -9 during a hundred concurrent uploads, on SQLite and on PostgreSQL: every acknowledged
picture survives byte for byte, the sweep leaves no file without a row, and retries with the same
Idempotency-Key make no duplicate (docs/media.md, "Crashes")."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import PG_ADMIN_DSN, LiveServer, _pg_admin, wait_for

UPLOADS = 100
INVITES = 50
ENV = {
    # Let all hundred be in flight at once: this test is about durability, not admission.
    "SHOWME_MAX_UPLOADS_IN_FLIGHT": "128",
    "SHOWME_MAX_UPLOADS_PER_ORGANISATION": "128",
    "SHOWME_MAX_UPLOADS_PER_INVITE": "2",
    "SHOWME_INVITE_RATE_PER_SENDER": "[[1000, 60]]",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}  # the server's own file in its data directory
        return
    name = f"showme_crash_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield {"SHOWME_DATABASE_URL": f"{base}/{name}"}
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Shot:
    token: str
    key: str
    data: bytes
    answer: dict[str, Any] | None = None  # the 201's media object: acknowledged
    errors: list[str] = field(default_factory=list)


def noise_jpeg(rng: random.Random) -> bytes:
    image = Image.frombytes("RGB", (160, 120), rng.randbytes(160 * 120 * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def metric(server: LiveServer, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def send(client: httpx.AsyncClient, shot: Shot) -> None:
    try:
        answer = await client.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": shot.token, "Idempotency-Key": shot.key},
            files={"picture": ("p.jpg", shot.data, "image/jpeg")},
        )
    except httpx.HTTPError as exc:
        shot.errors.append(type(exc).__name__)
        return
    if answer.status_code == 201:
        shot.answer = answer.json()["media"]
    else:
        shot.errors.append(f"{answer.status_code} {answer.text[:200]}")


async def upload_and_kill(server: LiveServer, shots: list[Shot], kill_after: int) -> None:
    """All uploads at once; kill -9 the server once ``kill_after`` are acknowledged."""
    limits = httpx.Limits(max_connections=UPLOADS + 10)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
        tasks = [asyncio.create_task(send(client, shot)) for shot in shots]
        while sum(shot.answer is not None for shot in shots) < kill_after:
            if all(task.done() for task in tasks):
                break
            await asyncio.sleep(0.005)
        server.kill()
        await asyncio.gather(*tasks)


async def retry_all(server: LiveServer, shots: list[Shot]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        answers = []
        for shot in shots:  # one after another: a phone retries its own queue
            answers.append(
                await client.post(
                    "/api/v1/caller/media",
                    headers={"X-ShowMe-Link": shot.token, "Idempotency-Key": shot.key},
                    files={"picture": ("p.jpg", shot.data, "image/jpeg")},
                )
            )
        return answers


def test_kill_9_during_a_hundred_uploads_loses_no_acknowledged_picture(
    start_server: Callable[..., LiveServer], store_env: dict[str, str]
) -> None:
    server = start_server(
        **ENV,
        **store_env,
        SHOWME_RETENTION_SWEEP_SECONDS="0",  # no sweep while the first process runs
    )
    server.cli("org", "create", "--slug", "north", "--name", "North", "--region", "BE")
    key = server.cli("apikey", "create", "--org", "north", "--name", "CAD").split()[-1]
    cad = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    tokens = []
    for _ in range(INVITES):
        created = cad.post("/api/v1/invites", json={"phone": "+32470123456", "send_sms": False})
        assert created.status_code == 201, created.text
        tokens.append(created.json()["link"].split("#", 1)[1])
    rng = random.Random(9)
    shots = [
        Shot(tokens[i % INVITES], f"crash-test-{i:04d}", noise_jpeg(rng)) for i in range(UPLOADS)
    ]

    asyncio.run(upload_and_kill(server, shots, kill_after=UPLOADS // 3))
    acknowledged = [shot for shot in shots if shot.answer is not None]
    assert UPLOADS // 3 <= len(acknowledged) < UPLOADS, "the kill came after every upload"

    # Ten minutes later, the same service again: its first sweep looks for bytes without a row
    # (the files are made older instead of waiting for the grace period to pass).
    for path in (server.data_dir / "media").rglob("*"):
        then = path.stat().st_mtime - 3600
        os.utime(path, (then, then))
    server.env.update(SHOWME_RETENTION_SWEEP_SECONDS="1", SHOWME_ORPHAN_GRACE_SECONDS="600")
    server.restart()
    wait_for(lambda: metric(server, "showme_retention_sweeps_total") >= 1, 30, "a sweep")

    listed = cad.get("/api/v1/media?limit=500").json()["items"]
    by_id = {item["id"]: item for item in listed}
    for shot in acknowledged:
        assert shot.answer is not None
        media_id = shot.answer["id"]
        assert media_id in by_id, f"acknowledged picture {media_id} is not listed"
        body = cad.get(f"/api/v1/media/{media_id}").content
        assert hashlib.sha256(body).hexdigest() == shot.answer["sha256"]
        assert by_id[media_id]["sha256"] == shot.answer["sha256"]

    # After one sweep, every stored file belongs to a listed picture.
    root = server.data_dir / "media"
    on_disk = [path for path in root.rglob("*") if path.is_file()]
    assert not [path for path in on_disk if path.name.startswith(".")], "half-written files"
    owners = {path.name.split(".", 1)[0] for path in on_disk}
    assert owners <= set(by_id), f"files without a row: {sorted(owners - set(by_id))}"

    # Every phone retries what it did not hear back about (and, to be sure, the rest too).
    answers = asyncio.run(retry_all(server, shots))
    assert [answer.status_code for answer in answers] == [201] * UPLOADS, [
        answer.text for answer in answers if answer.status_code != 201
    ]
    for shot, answer in zip(shots, answers, strict=True):
        if shot.answer is not None:
            assert answer.json()["media"]["id"] == shot.answer["id"]
            assert answer.headers.get("idempotent-replayed") == "true"
    final = cad.get("/api/v1/media?limit=500").json()["items"]
    assert len(final) == UPLOADS, "a retry made a duplicate, or a picture is missing"
    assert len({answer.json()["media"]["id"] for answer in answers}) == UPLOADS
    cad.close()
