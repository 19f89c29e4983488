"""coturn for tests and benchmarks: Debian's turnserver on loopback, checking TURN REST
credentials, in its own process group, stopped by pid."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from showme_ice_coturn import turn_credentials

TURNSERVER = Path("/usr/bin/turnserver")


@dataclass
class TurnServer:
    """coturn on loopback, checking TURN REST credentials made with ``secret``."""

    port: int
    secret: str
    log_file: Path
    process: subprocess.Popen[bytes]

    @property
    def urls(self) -> list[str]:
        return [
            f"turn:127.0.0.1:{self.port}?transport=udp",
            f"turn:127.0.0.1:{self.port}?transport=tcp",
        ]

    def plugin_env(self, ttl: int = 600, policy: str = "relay") -> dict[str, str]:
        """Server settings that hand out this coturn's credentials through the coturn plugin."""
        return {
            "SHOWME_PLUGINS": "ice_coturn",
            "SHOWME_PLUGIN_SETTINGS": json.dumps(
                {
                    "core": {"ice": "coturn", "ice_transport_policy": policy},
                    "ice_coturn": {"secret": self.secret, "urls": self.urls, "ttl": ttl},
                }
            ),
        }

    def allocates(self, username: str, password: str) -> bool:
        """Whether coturn makes an allocation for these credentials (turnutils_uclient)."""
        probe = subprocess.run(
            [
                "turnutils_uclient",
                "-y",
                "-n",
                "1",
                "-u",
                username,
                "-w",
                password,
                "-p",
                str(self.port),
                "127.0.0.1",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return "Total lost packets 0" in probe.stdout + probe.stderr


def _free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both)."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@contextmanager
def coturn(run_dir: Path) -> Iterator[TurnServer]:
    if not TURNSERVER.exists():
        raise RuntimeError(f"{TURNSERVER} is missing: 'make test' installs Debian's coturn")
    port = _free_port()
    low = random.randrange(50000, 64000, 200)
    secret = secrets.token_hex(16)
    log_file = run_dir / "turn.log"
    with (run_dir / "stdout.log").open("wb") as out:
        process = subprocess.Popen(
            [
                str(TURNSERVER),
                "-n",  # no configuration file: everything is on this command line
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={port}",
                f"--min-port={low}",
                f"--max-port={low + 199}",
                "--realm=showme.test",
                "--use-auth-secret",
                f"--static-auth-secret={secret}",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",  # both relays are 127.0.0.1 here; tests only
                "--fingerprint",
                "--verbose",  # one line per allocation, with its user name
                f"--log-file={log_file}",
                "--simple-log",
                f"--pidfile={run_dir / 'turn.pid'}",
                f"--userdb={run_dir / 'turndb'}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = TurnServer(port, secret, log_file, process)
    try:
        # An allocation, not only a binding: right after start coturn refuses the first ones.
        deadline = time.monotonic() + 30
        user, password = turn_credentials(secret, "probe", 600)
        while not server.allocates(user, password):
            if process.poll() is not None:
                raise RuntimeError((run_dir / "stdout.log").read_text())
            if time.monotonic() > deadline:
                raise RuntimeError("coturn made no allocation within 30 s")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
