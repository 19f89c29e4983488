"""A second phone on one link, in real browsers: it says it waits and is never "live", its camera
stays off; the dispatcher's "Allow" replaces the first phone, and the second goes live by itself
(it had asked) through coturn (docs/live.md, "One phone per link")."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import psap_with
from tests.e2e.test_live import Session
from tests.e2e.test_send_link import PHONE_VIEWPORT, watch_errors
from tests.turn import TurnServer

pytestmark = pytest.mark.browser

TEXTS = json.loads((Path(__file__).parents[2] / "citizen_app/i18n/en.json").read_text())


def test_a_second_phone_waits_and_goes_live_once_allowed(
    start_server: Callable[..., LiveServer], turn_server: TurnServer, browser: Browser
) -> None:
    server = psap_with(start_server, **turn_server.plugin_env(ttl=600, policy="relay"))
    session = Session(browser, server)
    other_context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        session.start_video()
        tile = session.console.locator(f'.live-tile[data-invite-id="{session.invite_id}"]')
        expect(tile).to_be_visible()
        session.wait_decoding()

        link = session.console.locator("#outbox-list a.outbox-link").first.get_attribute("href")
        other = other_context.new_page()  # its own storage: another device id
        other_errors = watch_errors(other)
        other.goto(str(link))
        problem = other.locator("#live-problem")
        expect(problem).to_have_text(TEXTS["live_other_device"])
        other.locator("#live-start").click()
        # The console is asked once the page knocked; by then the tap was long handled.
        expect(tile.locator(".live-device-request")).to_be_visible(timeout=10_000)
        expect(problem).to_have_text(TEXTS["live_other_device"])
        expect(other.locator("#live-on")).to_be_hidden()
        expect(other.locator("#live-indicator")).to_be_hidden()
        assert other.evaluate("() => window.showmeLive.state().camera") == "off"

        tile.get_by_role("button", name="Allow").click()
        expect(session.phone.locator("#live-problem")).to_have_text(TEXTS["live_replaced"])
        expect(session.phone.locator("#live-on")).to_be_hidden()
        # At its next knock the allowed phone has its seat, and the camera it asked for starts.
        expect(other.locator("#live-indicator")).to_be_visible(timeout=15_000)
        expect(other.locator("#live-indicator")).to_have_text(TEXTS["live_on"])
        expect(problem).to_be_hidden()
        expect(other.locator("#live-state")).to_have_attribute("data-rung", "video", timeout=20_000)
        expect(tile.locator(".live-rung")).to_have_attribute("data-rung", "video")
        assert session.console_errors == [] and other_errors == []
    finally:
        other_context.close()
        session.close()
