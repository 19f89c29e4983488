"""What the benchmarks share: a real ``showme serve`` on loopback, and percentiles."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Server:
    url: str
    api_key: str
    data_dir: Path
    pid: int
    cli: Callable[..., str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def showme_server(**env_overrides: str) -> Iterator[Server]:
    """A migrated server with one organisation and an API key; stopped by pid afterwards."""
    # A benchmark stopped with SIGTERM (timeout, Ctrl-C) still stops its server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="showme-bench-") as tmp:
        data_dir = Path(tmp)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "SHOWME_DATA_DIR": str(data_dir),
            "SHOWME_LOG_FILE": str(data_dir / "server.log"),
            "SHOWME_PUBLIC_URL": url,
            "SHOWME_SECRET_KEYS": "bench-only-key",
            # Benchmarks measure capacity, not abuse control: one key makes thousands of invites.
            "SHOWME_INVITE_RATE_PER_SENDER": "[[1000000, 60]]",
            "SHOWME_INVITE_RATE_PER_ORGANISATION": "[[1000000, 60]]",
            **env_overrides,
        }

        def cli(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "showme_core.cli", *args],
                env=env,
                input=stdin,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            return done.stdout

        cli("migrate")
        cli(
            "org",
            "create",
            "--slug",
            "bench",
            "--name",
            "Bench PSAP",
            "--region",
            "BE",
            "--credits",
            "100000",
        )
        api_key = cli("apikey", "create", "--org", "bench", "--name", "bench").strip().split()[-1]
        with (data_dir / "stdout.log").open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "showme_core.cli", "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError((data_dir / "stdout.log").read_text())
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start within 30 s")
                time.sleep(0.05)
            yield Server(url, api_key, data_dir, process.pid, cli)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


BENCH_EMAIL = "bench@bench.test"
BENCH_PASSWORD = "a long bench password"  # noqa: S105 - a throwaway account of a throwaway server


def add_dispatcher(server: Server) -> None:
    """A signed-in console needs a user: ``BENCH_EMAIL`` with ``BENCH_PASSWORD``."""
    server.cli(
        "user",
        "create",
        "--org",
        "bench",
        "--email",
        BENCH_EMAIL,
        "--name",
        "Bench",
        "--password-stdin",
        stdin=BENCH_PASSWORD + "\n",
    )


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float], unit: float = 1000.0) -> str:
    """p50 / p99 / max in milliseconds."""
    return (
        f"n={len(values)} p50={percentile(values, 50) * unit:.1f} ms "
        f"p99={percentile(values, 99) * unit:.1f} ms max={max(values) * unit:.1f} ms "
        f"mean={statistics.fmean(values) * unit:.1f} ms"
    )
