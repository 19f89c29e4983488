"""The picture loop in real browsers: a dispatcher sends a link, the caller chooses a large photo
with an EXIF location on a phone, and it lands at the top of the console's wall within 2 s,
with its location, without a reload; the bytes the console downloads carry no metadata."""

from __future__ import annotations

import hashlib
import io
import re
import time

import pytest
from PIL import Image
from playwright.sync_api import Browser, FilePayload, Page, expect

from tests import pictures
from tests.conftest import LiveServer
from tests.e2e.test_send_link import PHONE_VIEWPORT, sign_in, watch_errors

pytestmark = pytest.mark.browser
RIO = (-22.9068, -43.1729)  # south and west: both signs negative


def send_link(console: Page) -> str:
    console.get_by_label("Caller's phone").fill("0470 12 34 56")
    console.get_by_label("Caller's phone").press("Enter")
    link = console.locator("#outbox-list a.outbox-link").first
    expect(link).to_have_attribute("href", re.compile(r"/c/#"))
    href = link.get_attribute("href")
    assert href is not None
    return href


def test_a_chosen_photo_is_on_top_of_the_wall_within_two_seconds(
    browser: Browser, psap: LiveServer
) -> None:
    photo = pictures.jpeg(
        pictures.scene(4000, 3000),
        pictures.gps_exif(*RIO, accuracy_m=6, taken="2026:11:24 05:12:00", offset="-03:00"),
        comment=pictures.COMMENT,
        icc=pictures.ICC,
        xmp=pictures.XMP,
    )
    console_context = browser.new_context(viewport={"width": 1280, "height": 800})
    phone_context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        console = console_context.new_page()
        console_errors = watch_errors(console)
        sign_in(console, psap)
        href = send_link(console)
        expect(console.locator("#wall-list .wall-item")).to_have_count(0)

        phone = phone_context.new_page()
        phone_errors = watch_errors(phone)
        phone.goto(href)
        # As a caller would: the controls show once the link is open (and only then listen).
        expect(phone.locator("#actions")).to_be_visible()
        expect(phone.get_by_label("Choose a picture")).to_be_attached()

        chosen = time.monotonic()
        phone.locator("#choose-picture").set_input_files(
            FilePayload(name="IMG_0042.jpg", mimeType="image/jpeg", buffer=photo)
        )
        top = console.locator("#wall-list .wall-item").first
        try:
            expect(top).to_be_visible(timeout=2000)
        except AssertionError as exc:
            # What the phone and the server saw, to tell a slow upload from a lost event.
            sent = phone.locator("#sent-pictures li").first
            state = sent.get_attribute("data-state") if sent.count() else "no item"
            log = psap.log_text()[-3000:]
            raise AssertionError(
                f"not on the wall in 2 s; phone: {state}; server log: {log}"
            ) from exc
        on_wall = time.monotonic() - chosen
        assert on_wall <= 2.0, on_wall

        sent = phone.locator("#sent-pictures li").first
        expect(sent).to_have_attribute("data-state", "sent")
        media_id = sent.get_attribute("data-media-id")
        assert media_id and top.get_attribute("data-media-id") == media_id
        location = top.locator(".wall-location")
        expect(location).to_contain_text("-22.9068")
        expect(location).to_contain_text("-43.1729")

        # What the console downloads is what was hashed, with none of the photo's metadata.
        listed = console.request.get(f"{psap.url}/api/v1/media").json()["items"][0]
        assert listed["id"] == media_id
        assert max(listed["width"], listed["height"]) <= 2048  # downscaled on the phone
        assert listed["location"]["source"] == "caller_exif"
        stored = console.request.get(f"{psap.url}/api/v1/media/{media_id}?download=1").body()
        assert hashlib.sha256(stored).hexdigest() == listed["sha256"]
        image = Image.open(io.BytesIO(stored))
        assert image.format == "JPEG" and dict(image.getexif()) == {}
        assert "icc_profile" not in image.info and "comment" not in image.info
        for secret in (*pictures.SECRETS, b"Exif\x00\x00", b"http://ns.adobe.com/xap"):
            assert secret not in stored

        # Full size on click.
        top.click()
        viewer = console.locator("#media-viewer")
        expect(viewer).to_be_visible()
        full = viewer.locator("img").first
        expect(full).to_have_attribute("src", re.compile(media_id))
        console.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=full.element_handle()
        )
        console.keyboard.press("Escape")
        expect(viewer).to_be_hidden()

        assert console_errors == []
        assert phone_errors == []
    finally:
        console_context.close()
        phone_context.close()


@pytest.mark.parametrize(
    ("name", "mime", "make"),
    [
        ("IMG_0043.webp", "image/webp", pictures.webp),
        ("IMG_0044.heic", "image/heic", pictures.heic),
    ],
)
def test_a_location_the_page_cannot_read_still_arrives(
    browser: Browser, psap: LiveServer, name: str, mime: str, make: object
) -> None:
    """The page reads EXIF from JPEGs only: a WebP or HEIC goes as it is (it fits the upload
    limit), so the server reads its location, which the page's re-encoding would have dropped."""
    assert callable(make)
    photo = make(pictures.scene(1600, 1200), pictures.gps_exif(*RIO, accuracy_m=9))
    console_context = browser.new_context(viewport={"width": 1280, "height": 800})
    phone_context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        console = console_context.new_page()
        sign_in(console, psap)
        href = send_link(console)
        phone = phone_context.new_page()
        phone_errors = watch_errors(phone)
        phone.goto(href)
        expect(phone.locator("#actions")).to_be_visible()
        phone.locator("#choose-picture").set_input_files(
            FilePayload(name=name, mimeType=mime, buffer=photo)
        )
        sent = phone.locator("#sent-pictures li").first
        expect(sent).to_have_attribute("data-state", "sent", timeout=10_000)
        listed = console.request.get(f"{psap.url}/api/v1/media").json()["items"][0]
        assert listed["location"]["source"] == "exif", listed
        assert abs(listed["location"]["lat"] - RIO[0]) < 1e-4
        assert abs(listed["location"]["lon"] - RIO[1]) < 1e-4
        assert (listed["width"], listed["height"]) == (1600, 1200)  # the original went
        assert phone_errors == []
    finally:
        console_context.close()
        phone_context.close()


def test_a_picture_in_another_format_goes_as_a_jpeg(browser: Browser, psap: LiveServer) -> None:
    """A GIF (or a PNG screenshot) is not sent as it is: the server takes JPEG, PNG, WebP and
    HEIC only, and a full-size PNG is many megabytes on a weak network. The page's JPEG goes."""
    console_context = browser.new_context(viewport={"width": 1280, "height": 800})
    phone_context = browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True)
    try:
        console = console_context.new_page()
        sign_in(console, psap)
        href = send_link(console)
        phone = phone_context.new_page()
        phone.goto(href)
        expect(phone.locator("#actions")).to_be_visible()
        for name, mime, data in (
            ("drawing.gif", "image/gif", pictures.gif()),
            ("screenshot.png", "image/png", pictures.png(pictures.scene(3000, 2000))),
        ):
            phone.locator("#choose-picture").set_input_files(
                FilePayload(name=name, mimeType=mime, buffer=data)
            )
            sent = phone.locator("#sent-pictures li").first
            expect(sent).to_have_attribute("data-state", "sent", timeout=10_000)
        items = console.request.get(f"{psap.url}/api/v1/media").json()["items"]
        assert len(items) == 2
        assert max(items[0]["width"], items[0]["height"]) == 2048  # the PNG, downscaled
    finally:
        console_context.close()
        phone_context.close()
