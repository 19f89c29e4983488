"""Suite-wide fixtures: both stores, and a real server process for feed and browser tests."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from showme_core.store.migrate import migrate
from tests.turn import TurnServer, coturn

pytest_plugins = ["showme_core.testing"]

PG_ADMIN_DSN = os.environ.get("SHOWME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def showme_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Every in-process test runs on SQLite and on PostgreSQL, each migrated once per session."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store') / 'showme.db'}"
        migrate(url)
        yield url
        return
    name = f"showme_test_{secrets.token_hex(4)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    migrate(url)
    try:
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    log_file: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "showme_core.cli", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, as a crash or a power cut would stop it."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """Start the same service again (same data, database and port) after it stopped."""
        assert self.process.poll() is not None, "stop or kill the server first"
        self.process = _launch(self.url, self.data_dir, self.env)


def _launch(url: str, data_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    port = url.rsplit(":", 1)[1]
    with (data_dir / "stdout.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "showme_core.cli", "serve", "--port", port],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: process.poll() is not None or _healthy(url), 30, "the server to answer")
        assert process.poll() is None, (data_dir / "stdout.log").read_text()
    except BaseException:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        raise
    return process


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Start ``showme serve`` as its own process group on a random port; stopped by pid after."""
    started: list[LiveServer] = []

    def start(**env_overrides: str) -> LiveServer:
        data_dir = tmp_path_factory.mktemp("server")
        port = free_port()
        log_file = data_dir / "server.log"
        env = {
            **os.environ,
            "SHOWME_DATA_DIR": str(data_dir),
            "SHOWME_LOG_FILE": str(log_file),
            "SHOWME_ARGON2_TIME_COST": "1",
            "SHOWME_ARGON2_MEMORY_KIB": "1024",
            "SHOWME_SECRET_KEYS": "live-server-test-key",
            "SHOWME_SSE_HEARTBEAT_SECONDS": "1",
            "SHOWME_STRICT_EVENTS": "true",
            **env_overrides,
        }
        url = f"http://127.0.0.1:{port}"
        env.setdefault("SHOWME_PUBLIC_URL", url)
        subprocess.run(
            [sys.executable, "-m", "showme_core.cli", "migrate"],
            env=env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        server = LiveServer(url, data_dir, log_file, env, _launch(url, data_dir, env))
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def turn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    """Debian's coturn, started for the tests with relay on loopback; stopped by pid after."""
    with coturn(tmp_path_factory.mktemp("turn")) as server:
        yield server
