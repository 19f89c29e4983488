"""A dispatcher signs in, sends a link, sees it in the outbox, and watches the invite turn
"opened" when the caller loads it on a phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import PASSWORD

pytestmark = pytest.mark.browser
PHONE_VIEWPORT = {"width": 390, "height": 844}


def watch_errors(page: Page) -> list[str]:
    """Collect script errors and CSP violations; expected HTTP error statuses are not errors."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    return errors


def sign_in(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/console/")
    page.get_by_label("Email").fill("anna@north.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")


def test_dispatcher_sends_a_link_and_sees_it_opened(browser: Browser, psap: LiveServer) -> None:
    console_context = browser.new_context(viewport={"width": 1280, "height": 800})
    phone_context = browser.new_context(
        viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True, locale="fr-BE"
    )
    try:
        console = console_context.new_page()
        console_errors = watch_errors(console)
        sign_in(console, psap)
        expect(console.locator("#org-name")).to_have_text("PSAP North")
        expect(console.locator("#credits")).to_have_text("50")

        # Two keystrokes' worth: the phone field has focus; type the number, press Enter.
        expect(console.get_by_label("Caller's phone")).to_be_focused()
        console.get_by_label("Incident id").fill("INC-2026-0042")
        console.get_by_label("Caller's phone").fill("0470 12 34 56")
        console.get_by_label("Caller's phone").press("Enter")

        row = console.locator("tr[data-invite-id]").first
        expect(row.locator(".invite-status")).to_have_text("pending")
        expect(row.locator(".sms-status")).to_have_text("sent")
        expect(row).to_contain_text("+32470123456")
        expect(row).to_contain_text("INC-2026-0042")
        expect(console.locator("#credits")).to_have_text("49")

        link = console.locator("#outbox-list a.outbox-link").first
        expect(link).to_have_attribute("href", re.compile(r"/c/#[A-Za-z0-9_-]{24}$"))
        href = link.get_attribute("href")
        assert href is not None and href.startswith(psap.url)

        phone = phone_context.new_page()
        phone_errors = watch_errors(phone)
        phone.goto(href)
        expect(phone.locator("#welcome")).to_be_visible()
        expect(phone.locator("#org-name")).to_have_text("PSAP North")
        assert "#" not in phone.url  # the token left the address bar

        # Live, without a reload: the console row turns "opened".
        expect(row.locator(".invite-status")).to_have_text("opened")
        expect(row.locator(".invite-opened")).not_to_have_text("")

        # The dispatcher ends it; the link dies at once.
        console.get_by_role("button", name="End invite for +32470123456").click()
        expect(row.locator(".invite-status")).to_have_text("ended")
        phone.reload()
        expect(phone.locator("#problem")).to_have_attribute("data-problem", "ended")

        assert console_errors == []
        assert phone_errors == []
    finally:
        console_context.close()
        phone_context.close()


def test_wrong_password_and_invalid_number_are_explained(
    browser: Browser, psap: LiveServer
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{psap.url}/console/")
        page.get_by_label("Email").fill("anna@north.test")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#signin-error")).to_contain_text("Wrong email or password")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")
        page.get_by_label("Caller's phone").fill("12")
        page.get_by_label("Caller's phone").press("Enter")
        expect(page.locator("#send-error")).to_contain_text("not a valid phone number")
        expect(page.locator("#credits")).to_have_text("50")
        assert errors == []
    finally:
        context.close()


def test_a_link_preview_bot_does_not_open_the_invite(browser: Browser, psap: LiveServer) -> None:
    key = psap.cli("apikey", "create", "--org", "north", "--name", "cad").strip().splitlines()[-1]
    import httpx

    created = httpx.post(
        f"{psap.url}/api/v1/invites",
        json={"phone": "+32470123456", "send_sms": False},
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    # A preview bot fetches the URL without running scripts and without the fragment.
    assert httpx.get(created["link"].split("#")[0]).status_code == 200
    invite = httpx.get(
        f"{psap.url}/api/v1/invites/{created['id']}", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert invite["status"] == "pending"
    context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(created["link"])
        expect(page.locator("#welcome")).to_be_visible()
    finally:
        context.close()
    invite = httpx.get(
        f"{psap.url}/api/v1/invites/{created['id']}", headers={"Authorization": f"Bearer {key}"}
    ).json()
    assert invite["status"] == "opened"
