"""Test fixtures and recording fakes for ShowMe and its plugin authors.

Opt in from a ``conftest.py``::

    pytest_plugins = ["showme_core.testing"]

Then override ``showme_plugins`` to register your plugin, and use ``showme_client`` (an httpx client
bound to an in-process app), ``tenant`` (an organisation with a signed-in dispatcher and an API
key), ``phone_for`` (a caller's phone: open the link, send a picture, go live) and ``settle`` (wait
until plugins have reacted). The database is migrated once per test session.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from showme_core.accounts import Role, create_api_key, create_user
from showme_core.app import ShowMe, create_app
from showme_core.clock import utcnow
from showme_core.config import Settings
from showme_core.hookspecs import hookimpl
from showme_core.organisations import Organisation, create_organisation
from showme_core.providers import OutgoingSms, SmsReceipt, SmsStatus, StoredKey, StoredObject
from showme_core.store.migrate import migrate
from showme_core.testing_phone import CallerPhone

TEST_ORIGIN = "http://showme.test"
TEST_PASSWORD = "correct horse battery"  # noqa: S105 - a fixture, not a secret


class RecordingSmsProvider:
    """An SMS provider that records what it is asked to send and answers as scripted.

    ``answers`` maps a phone number to the receipt (or exception) to give for it.
    """

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.sent: list[OutgoingSms] = []
        self.answers: dict[str, SmsReceipt | BaseException] = {}

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        self.sent.append(sms)
        answer = self.answers.get(sms.to)
        if isinstance(answer, BaseException):
            raise answer
        return answer or SmsReceipt(SmsStatus.SENT, provider_message_id=f"rec-{len(self.sent)}")


class RecordingStorage:
    """A storage backend that keeps bytes in memory and records every call."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.objects: dict[str, bytes] = {}
        self.written: dict[str, datetime] = {}
        self.calls: list[tuple[str, str]] = []

    async def put(self, key: str, data: bytes) -> StoredObject:
        import hashlib

        self.calls.append(("put", key))
        self.objects[key] = bytes(data)
        self.written[key] = utcnow()
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    async def open(self, key: str) -> AsyncIterator[bytes]:
        self.calls.append(("open", key))
        if key not in self.objects:
            raise KeyError(key)
        yield self.objects[key]

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.objects.pop(key, None)
        self.written.pop(key, None)

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def list(self, prefix: str = "") -> AsyncIterator[StoredKey]:
        self.calls.append(("list", prefix))
        for key, written in list(self.written.items()):
            if key.startswith(prefix):
                yield StoredKey(key, written)


class ProviderPlugin:
    """Registers given provider instances: the shortest way to put a fake into a test app."""

    def __init__(
        self,
        sms: list[Any] | None = None,
        storage: list[Any] | None = None,
        ice: list[Any] | None = None,
    ) -> None:
        self._sms = sms or []
        self._storage = storage or []
        self._ice = ice or []

    @hookimpl
    def showme_register_sms_providers(self, register: Callable[[Any], None]) -> None:
        for provider in self._sms:
            register(provider)

    @hookimpl
    def showme_register_storage_backends(self, register: Callable[[Any], None]) -> None:
        for backend in self._storage:
            register(backend)

    @hookimpl
    def showme_register_ice_providers(self, register: Callable[[Any], None]) -> None:
        for provider in self._ice:
            register(provider)


@dataclass
class Tenant:
    """An organisation with a signed-in dispatcher (``client``) and a CAD API key (``cad``)."""

    org: Organisation
    email: str
    password: str
    api_key: str
    client: httpx.AsyncClient
    cad: httpx.AsyncClient
    extras: dict[str, Any] = field(default_factory=dict)


def settings_for_tests(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: cheap argon2, logs to a file in ``data_dir``."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "secret_keys": ["test-secret-key"],
        "log_file": data_dir / "showme.log",
        "sse_heartbeat_seconds": 1.0,
        # Links are built from public_url only; the in-process clients call this origin, which
        # stays an allowed host when a test sets another public_url (as a proxy's inner name).
        "public_url": TEST_ORIGIN,
        "allowed_hosts": [TEST_ORIGIN.removeprefix("http://")],
        # An event that drifts from the catalogue fails the test that emits it.
        "strict_events": True,
        # Tests purge explicitly (media.purge_expired) rather than racing a background sweep.
        "retention_sweep_seconds": 0,
        **overrides,
    }
    return Settings.model_validate(values)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def showme_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite database migrated once for the session; override to use another store."""
    path = tmp_path_factory.mktemp("store") / "showme.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url)
    return url


@pytest.fixture
def showme_plugins() -> list[object]:
    """Plugin objects or modules to register in the test app; override in your conftest."""
    return []


@pytest.fixture
def showme_settings(tmp_path: Path, showme_database_url: str) -> Settings:
    return settings_for_tests(tmp_path, showme_database_url)


@pytest.fixture
async def showme_app(showme_settings: Settings, showme_plugins: list[object]) -> AsyncIterator[Any]:
    app = create_app(showme_settings, plugins=showme_plugins)
    showme: ShowMe = app.state.showme
    await _consumers_begin_now(showme)
    await showme.start()
    try:
        yield app
    finally:
        await showme.stop()


async def _consumers_begin_now(showme: ShowMe) -> None:
    """Tests share one store per session: a test's durable consumers begin at its present, so
    they see the events of the organisations the test makes, not the history earlier tests left
    (a consumer in production starts at an organisation's first event, ``docs/plugins.md``)."""
    from sqlalchemy import delete, select

    from showme_core.clock import utcnow
    from showme_core.store.schema import event_cursors, organisations

    names = list(showme.consumers.consumers)
    if not names:
        return
    async with showme.db.transaction() as conn:
        present = [
            (row.id, int(row.event_seq)) for row in await conn.execute(select(organisations))
        ]
        await conn.execute(delete(event_cursors).where(event_cursors.c.consumer.in_(names)))
        rows = [
            {
                "consumer": name,
                "organisation_id": org_id,
                "last_event_id": seq,
                "updated_at": utcnow(),
            }
            for name in names
            for org_id, seq in present
        ]
        if rows:
            await conn.execute(event_cursors.insert(), rows)


@pytest.fixture
def showme(showme_app: Any) -> ShowMe:
    service: ShowMe = showme_app.state.showme
    return service


def client_for(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    headers = {"Origin": TEST_ORIGIN, **kwargs.pop("headers", {})}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=TEST_ORIGIN, headers=headers, **kwargs
    )


@pytest.fixture
async def showme_client(showme_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client of the in-process app (sends this origin's ``Origin`` header)."""
    async with client_for(showme_app) as client:
        yield client


@pytest.fixture
async def make_tenant(showme_app: Any) -> AsyncIterator[Callable[..., Awaitable[Tenant]]]:
    """Create organisations with a signed-in dispatcher and an API key, as many as a test needs."""
    clients: list[httpx.AsyncClient] = []
    showme: ShowMe = showme_app.state.showme

    async def make(**org_options: Any) -> Tenant:
        options = {"default_region": "BE", **org_options}
        slug = unique("org")
        email = f"{unique('dispatcher')}@example.test"
        async with showme.transaction() as tx:
            org = await create_organisation(tx.conn, slug=slug, name=f"PSAP {slug}", **options)
            await create_user(
                tx.conn,
                showme.passwords,
                organisation_id=org.id,
                email=email,
                name="Dispatcher",
                role=Role.DISPATCHER,
                password=TEST_PASSWORD,
            )
            _key, secret = await create_api_key(tx.conn, organisation_id=org.id, name="CAD")
        client = client_for(showme_app)
        answer = await client.post(
            "/api/v1/session", json={"email": email, "password": TEST_PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        cad = client_for(showme_app, headers={"Authorization": f"Bearer {secret}", "Origin": ""})
        cad.headers.pop("Origin")
        clients.extend([client, cad])
        return Tenant(org, email, TEST_PASSWORD, secret, client, cad)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def tenant(make_tenant: Callable[..., Awaitable[Tenant]]) -> Tenant:
    return await make_tenant()


async def settle(showme: ShowMe, timeout: float = 10.0) -> None:
    """Wait until plugins have reacted to what happened so far: the service's background work
    (``showme_on_event``, picture and stream hooks, SMS sends) is done, and every durable
    consumer and CAD adapter has taken every organisation's latest event. Fails after
    ``timeout`` seconds rather than hanging a test."""
    import asyncio

    from sqlalchemy import select

    from showme_core.store.schema import organisations

    deadline = asyncio.get_running_loop().time() + timeout
    await showme.drain(timeout)
    async with showme.db.read() as db:
        latest = {row.id: int(row.event_seq) for row in await db.execute(select(organisations))}
    for org_id, last in latest.items():
        while True:
            cursors = await showme.consumers.cursors(org_id)
            if all(cursors.get(name, 0) >= last for name in showme.consumers.consumers):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"consumers still behind event {last} of {org_id}: {cursors}")
            await asyncio.sleep(0.02)
    await showme.drain(max(0.1, deadline - asyncio.get_running_loop().time()))


async def sweep_now(showme: ShowMe, at: datetime | None = None) -> None:
    """Run the periodic sweep once (off in the kit, ``retention_sweep_seconds = 0``), as if it
    were ``at`` (now by default): invites past their expiry are announced (``invite.expired``),
    media past retention purged."""
    from showme_core.sweeps import sweep

    await sweep(showme, orphans=False, now=at)


def phone_for(showme_app: Any, link: str, device: str | None = None) -> CallerPhone:
    """A caller's phone that received ``link`` (:class:`~showme_core.testing_phone.CallerPhone`):
    ``await phone.open()``, ``await phone.upload(jpeg)``, ``async with phone.live(): ...``."""
    return CallerPhone(showme_app, link, device)


def iter_log_lines(settings: Settings) -> Iterator[str]:
    if settings.log_file and settings.log_file.exists():
        yield from settings.log_file.read_text().splitlines()


async def read_feed_backlog(
    app: Any, headers: dict[str, str], after: int = 0, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Read the event feed in-process until its backlog is sent (the first keep-alive), then hang
    up. httpx's ASGI transport cannot stream an endless response, so this speaks ASGI directly."""
    import asyncio
    import json

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/events",
        "raw_path": b"/api/v1/events",
        "query_string": f"after={after}".encode(),
        "root_path": "",
        "headers": [(b"host", b"showme.test"), *raw_headers],
        "client": ("127.0.0.1", 1),
        "server": ("showme.test", 80),
    }
    done = asyncio.Event()
    chunks: list[bytes] = []
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if b": keep-alive" in message.get("body", b"") or not message.get("more_body"):
                done.set()

    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        done.set()
        await asyncio.wait_for(task, timeout)
    if status and status[0] != 200:
        raise AssertionError(f"feed answered {status[0]}: {b''.join(chunks)!r}")
    text = b"".join(chunks).decode()
    return [
        json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")
    ]
