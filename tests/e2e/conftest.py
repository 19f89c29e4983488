"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import LiveServer

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a long dispatcher password"
# Keep Chromium off the network on a closed machine, and accept camera prompts in later tests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # Host candidates as addresses, not mDNS names headless Chromium cannot resolve.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


# Package scope: Playwright's sync API runs an event loop in this thread while the browser is
# open, and async tests elsewhere in the session cannot run beside it.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run 'make test', which installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def psap_with(start_server: Callable[..., LiveServer], **env: str) -> LiveServer:
    """A server with organisation "north" and its dispatcher Anna; ``env`` configures it."""
    server = start_server(**env)
    server.cli("org", "create", "--slug", "north", "--name", "PSAP North", "--region", "BE")
    server.cli(
        "user",
        "create",
        "--org",
        "north",
        "--email",
        "anna@north.test",
        "--name",
        "Anna",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    return server


@pytest.fixture
def psap(start_server: Callable[..., LiveServer]) -> LiveServer:
    return psap_with(start_server)
