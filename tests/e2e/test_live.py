"""Live video in real browsers through a real coturn: the caller's fake camera reaches the
console relayed with per-session REST credentials; an ICE restart after those credentials expired
still reconnects; with TURN unreachable the page is on stills within 5 s and frames reach the wall;
a console snapshot lands on the wall with its hash."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import LiveServer, wait_for
from tests.e2e.conftest import psap_with
from tests.e2e.test_send_link import PHONE_VIEWPORT, sign_in, watch_errors
from tests.turn import TurnServer

pytestmark = pytest.mark.browser

INBOUND = """(id) => new Promise(async (resolve) => {
  const tile = window.showmeConsoleLive.tile(id);
  if (!tile || !tile.pc) return resolve(null);
  const stats = await tile.pc.getStats();
  let frames = 0, pair = null;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
    if (s.type === "transport" && s.selectedCandidatePairId) {
      pair = stats.get(s.selectedCandidatePairId);
    }
  });
  const local = pair && stats.get(pair.localCandidateId);
  const remote = pair && stats.get(pair.remoteCandidateId);
  resolve({frames, width: tile.video.videoWidth, connection: tile.pc.connectionState,
           local: local && local.candidateType, remote: remote && remote.candidateType,
           remoteAddress: remote && `${remote.address}:${remote.port}`});
})"""


RUNG_CLOCK = """() => {
  window.rungClock = {};
  const mark = (name) => {
    if (!(name in window.rungClock)) window.rungClock[name] = performance.now();
  };
  new MutationObserver(() => mark(document.getElementById("live-state").dataset.rung))
    .observe(document.getElementById("live-state"), { attributes: true });
  const poll = () => {
    if (window.showmeLive && window.showmeLive.state().camera === "granted") mark("granted");
    else requestAnimationFrame(poll);
  };
  poll();
}"""


class Session:
    def __init__(self, browser: Browser, server: LiveServer) -> None:
        self.server = server
        self.console_context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.phone_context = browser.new_context(
            viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True
        )
        self.console = self.console_context.new_page()
        self.console_errors = watch_errors(self.console)
        sign_in(self.console, server)
        self.console.get_by_label("Caller's phone").fill("0470 12 34 56")
        self.console.get_by_label("Caller's phone").press("Enter")
        link = self.console.locator("#outbox-list a.outbox-link").first
        expect(link).to_have_attribute("href", re.compile(r"/c/#"))
        self.invite_id = self.console.locator("tr[data-invite-id]").first.get_attribute(
            "data-invite-id"
        )
        self.phone = self.phone_context.new_page()
        self.phone_errors = watch_errors(self.phone)
        self.phone.goto(str(link.get_attribute("href")))

    def start_video(self) -> float:
        start = self.phone.locator("#live-start")
        expect(start).to_be_visible()
        start.click()
        self.phone.wait_for_function("() => window.showmeLive.state().camera === 'granted'")
        return time.monotonic()

    def inbound(self) -> dict[str, Any]:
        found: dict[str, Any] = self.console.evaluate(INBOUND, self.invite_id) or {}
        return found

    def wait_decoding(self, more_than: int = 0, timeout: float = 20) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def decoding() -> bool:
            seen.update(self.inbound())
            return seen.get("frames", 0) > more_than and seen.get("width", 0) > 0

        wait_for(decoding, timeout, f"the console to decode frames (last: {seen})")
        return seen

    def close(self) -> None:
        self.console_context.close()
        self.phone_context.close()


@pytest.fixture
def sessions(browser: Browser) -> Iterator[Callable[[LiveServer], Session]]:
    made: list[Session] = []

    def make(server: LiveServer) -> Session:
        made.append(Session(browser, server))
        return made[-1]

    yield make
    for session in made:
        session.close()


def test_video_reaches_the_console_relayed_by_coturn_and_a_snapshot_lands_on_the_wall(
    start_server: Callable[..., LiveServer],
    turn_server: TurnServer,
    sessions: Callable[[LiveServer], Session],
) -> None:
    server = psap_with(start_server, **turn_server.plugin_env(ttl=600, policy="relay"))
    session = sessions(server)
    session.start_video()
    tile = session.console.locator(f'.live-tile[data-invite-id="{session.invite_id}"]')
    expect(tile).to_be_visible()  # opened by itself: the dispatcher's own invite
    stats = session.wait_decoding()
    assert stats["local"] == "relay" and stats["remote"] == "relay", stats
    expect(tile.locator(".live-quality")).to_have_attribute("data-route", "relay")
    expect(session.phone.locator("#live-state")).to_have_attribute("data-rung", "video")
    expect(tile.locator(".live-rung")).to_have_attribute("data-rung", "video")
    expect(session.phone.locator("#live-indicator")).to_be_visible()

    tile.get_by_role("button", name="Snapshot").click()
    snapshot = session.console.locator('#wall-list .wall-item[data-kind="snapshot"]').first
    expect(snapshot).to_be_visible(timeout=10_000)
    media_id = snapshot.get_attribute("data-media-id")
    listed = session.console.request.get(f"{server.url}/api/v1/media").json()["items"]
    item = next(m for m in listed if m["id"] == media_id)
    assert item["kind"] == "snapshot" and (item["width"], item["height"]) != (0, 0)
    stored = session.console.request.get(f"{server.url}{item['url']}").body()
    assert hashlib.sha256(stored).hexdigest() == item["sha256"]

    # Hiding the picture does not end the stream.
    tile.get_by_role("button", name="Hide picture").click()
    expect(tile).to_have_class(re.compile("picture-hidden"))
    session.wait_decoding(more_than=stats["frames"] + 10)
    assert session.console_errors == [] and session.phone_errors == []


def test_an_ice_restart_after_the_credentials_expired_still_reconnects(
    start_server: Callable[..., LiveServer],
    turn_server: TurnServer,
    sessions: Callable[[LiveServer], Session],
) -> None:
    ttl = 4
    server = psap_with(start_server, **turn_server.plugin_env(ttl=ttl, policy="relay"))
    session = sessions(server)
    session.start_video()
    before = session.wait_decoding()
    first_user = session.phone.evaluate(
        "() => window.showmeLive.pc().getConfiguration().iceServers[0].username"
    )
    expiry = int(first_user.split(":", 1)[0])
    wait_for(lambda: time.time() > expiry + 1, ttl + 5, "the first credentials to expire")

    session.phone.evaluate("() => window.showmeLive.restart()")
    session.phone.wait_for_function(
        "(old) => window.showmeLive.pc().getConfiguration().iceServers[0].username !== old",
        arg=first_user,
    )
    new_user = session.phone.evaluate(
        "() => window.showmeLive.pc().getConfiguration().iceServers[0].username"
    )
    assert int(new_user.split(":", 1)[0]) > expiry
    # coturn made an allocation for the fresh user name, and video flows on through it.
    wait_for(
        lambda: (
            f"user <{new_user}>" in turn_server.log_file.read_text()
            and "ALLOCATE processed, success" in turn_server.log_file.read_text()
        ),
        20,
        "coturn to allocate with the fresh credentials",
    )
    after = session.wait_decoding(more_than=before["frames"] + 30)
    assert after["local"] == "relay" and after["connection"] == "connected", after
    expect(session.phone.locator("#live-state")).to_have_attribute("data-rung", "video")
    assert session.console_errors == [] and session.phone_errors == []


def test_with_turn_unreachable_the_caller_sends_stills_within_five_seconds(
    start_server: Callable[..., LiveServer],
    sessions: Callable[[LiveServer], Session],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    settings = {
        "core": {"ice": "static", "ice_transport_policy": "relay"},
        "static": {
            "ice_servers": [
                {
                    "urls": f"turn:127.0.0.1:{closed_port}?transport=udp",
                    "username": "nobody",
                    "credential": "nothing",
                }
            ]
        },
    }
    server = psap_with(start_server, SHOWME_PLUGIN_SETTINGS=json.dumps(settings))
    session = sessions(server)
    # The page's own clock: when the camera was granted, and when the page went to stills.
    session.phone.evaluate(RUNG_CLOCK)
    session.start_video()
    expect(session.phone.locator("#live-state")).to_have_attribute(
        "data-rung", "stills", timeout=10_000
    )
    clock = session.phone.evaluate("() => window.rungClock")
    took = clock["stills"] - clock["granted"]
    assert took <= 5_200, f"stills {took:.0f} ms after the camera was granted"
    still = session.console.locator('#wall-list .wall-item[data-kind="still"]').first
    expect(still).to_be_visible(timeout=10_000)
    tile = session.console.locator(f'.live-tile[data-invite-id="{session.invite_id}"]')
    expect(tile.locator(".live-rung")).to_have_attribute("data-rung", "stills")
    expect(tile.locator("img.live-still")).to_be_visible()
    # Stills keep coming, one every 2 s, while the stream keeps retrying.
    first = still.get_attribute("data-media-id")
    expect(
        session.console.locator('#wall-list .wall-item[data-kind="still"]').first
    ).not_to_have_attribute("data-media-id", str(first), timeout=6_000)
    assert session.console_errors == [] and session.phone_errors == []
