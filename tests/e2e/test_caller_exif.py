"""The caller page's own picture handling, in the real browser: its EXIF reader (the browser's
downscaling drops EXIF, so the page reads the original first), its downscaling, and the upload
controls against a stand-in for POST /api/v1/caller/media (the server's own tests cover the route).
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, FilePayload, Page, Request, Route, expect

from tests.conftest import LiveServer
from tests.e2e.test_send_link import watch_errors

pytestmark = pytest.mark.browser
I18N = Path(__file__).parents[2] / "citizen_app" / "i18n"
NOTHING = {"lat": None, "lon": None, "accuracy_m": None, "captured_at": None}

READ_EXIF = """async (encoded) => {
  const { readExif } = await import("/c/exif.js");
  return encoded.map((b64) => readExif(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer));
}"""


def jpeg(
    size: tuple[int, int] = (32, 24),
    gps: dict[int, Any] | None = None,
    taken: str | None = None,
    offset: str | None = None,
    endian: str = "<",
    orientation: int | None = None,
) -> bytes:
    exif = Image.Exif()
    exif.endian = endian
    if gps is not None:
        exif[0x8825] = gps
    if taken is not None:
        exif[0x8769] = {0x9003: taken, **({0x9011: offset} if offset else {})}
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, "JPEG", exif=exif, quality=80)
    return out.getvalue()


def read_exif(page: Page, *samples: bytes) -> list[dict[str, Any]]:
    encoded = [base64.b64encode(sample).decode() for sample in samples]
    results: list[dict[str, Any]] = page.evaluate(READ_EXIF, encoded)
    return [{**NOTHING, **result} for result in results]


@pytest.fixture
def caller_page(browser: Browser, start_server: Any) -> Iterator[Callable[..., Page]]:
    """The caller page without a link: it says the link does not work, and its modules load."""
    server: LiveServer = start_server()
    contexts = []
    errors: list[list[str]] = []

    def open_page(**options: Any) -> Page:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        errors.append(watch_errors(page))
        page.goto(f"{server.url}/c/")
        expect(page.locator("#problem")).to_have_attribute("data-problem", "invalid")
        return page

    try:
        yield open_page
        assert [error for page_errors in errors for error in page_errors] == []
    finally:
        for context in contexts:
            context.close()


HEMISPHERES = [
    # (lat ref, lat dms, lon ref, lon dms, expected lat, expected lon)
    ("N", (50.0, 50.0, 1.08), "E", (4.0, 21.0, 6.12), 1, 1),  # Brussels
    ("N", (40.0, 42.0, 46.0), "W", (74.0, 0.0, 21.6), 1, -1),  # New York
    ("S", (33.0, 52.0, 4.8), "E", (151.0, 12.0, 36.0), -1, 1),  # Sydney
    ("S", (22.0, 54.0, 30.0), "W", (43.0, 11.0, 47.0), -1, -1),  # Rio de Janeiro
]


def degrees(dms: tuple[float, float, float]) -> float:
    return dms[0] + dms[1] / 60 + dms[2] / 3600


def test_reads_location_error_and_time_in_every_hemisphere_and_byte_order(
    caller_page: Callable[..., Page],
) -> None:
    page = caller_page()
    samples, expected = [], []
    for endian in ("<", ">"):
        for lat_ref, lat, lon_ref, lon, lat_sign, lon_sign in HEMISPHERES:
            gps = {1: lat_ref, 2: lat, 3: lon_ref, 4: lon, 0x1F: 7.5}
            data = jpeg(gps=gps, taken="2026:11:24 07:59:41", offset="-03:30", endian=endian)
            tiff = data.index(b"Exif\x00\x00") + 6
            assert data[tiff : tiff + 2] == (b"II" if endian == "<" else b"MM")
            samples.append(data)
            expected.append((lat_sign * degrees(lat), lon_sign * degrees(lon)))
    for result, (want_lat, want_lon) in zip(read_exif(page, *samples), expected, strict=True):
        assert result["lat"] == pytest.approx(want_lat, abs=1e-6)
        assert result["lon"] == pytest.approx(want_lon, abs=1e-6)
        assert result["accuracy_m"] == pytest.approx(7.5)
        assert result["captured_at"] == "2026-11-24T07:59:41-03:30"


def test_capture_time_without_an_offset_takes_the_phones_time_zone_on_that_date(
    caller_page: Callable[..., Page],
) -> None:
    samples = [jpeg(taken="2026:07:01 12:00:00"), jpeg(taken="2026:01:15 12:00:00")]
    for zone, summer, winter in [
        ("Europe/Brussels", "+02:00", "+01:00"),
        ("America/Sao_Paulo", "-03:00", "-03:00"),
        ("Asia/Kolkata", "+05:30", "+05:30"),
    ]:
        page = caller_page(timezone_id=zone)
        in_july, in_january = read_exif(page, *samples)
        assert in_july == {**NOTHING, "captured_at": f"2026-07-01T12:00:00{summer}"}
        assert in_january == {**NOTHING, "captured_at": f"2026-01-15T12:00:00{winter}"}


def test_no_exif_partial_exif_and_bad_bytes_read_as_nothing_without_throwing(
    caller_page: Callable[..., Page],
) -> None:
    page = caller_page()
    plain = io.BytesIO()
    Image.new("RGB", (16, 16)).save(plain, "JPEG")
    png = io.BytesIO()
    Image.new("RGB", (16, 16)).save(png, "PNG")
    full = jpeg(gps={1: "S", 2: (33.0, 52.0, 4.8), 3: "E", 4: (151.0, 12.0, 36.0)}, taken="x")
    no_ref = jpeg(gps={2: (33.0, 52.0, 4.8), 4: (151.0, 12.0, 36.0)})
    null_island = jpeg(gps={1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)})
    bad_date = jpeg(taken="0000:00:00 00:00:00")
    results = read_exif(page, plain.getvalue(), png.getvalue(), b"", b"\xff\xd8", b"\x00" * 9)
    assert results == [NOTHING] * 5
    located = read_exif(page, full)[0]
    assert located["lat"] == pytest.approx(-degrees((33.0, 52.0, 4.8)), abs=1e-6)
    assert located["accuracy_m"] is None and located["captured_at"] is None  # "x" is no time
    # No hemisphere could mean the wrong side of the world; 0,0 is a phone without a fix.
    assert read_exif(page, no_ref, null_island, bad_date) == [NOTHING] * 3

    # An EXIF block after an XMP one (both are APP1) is still found.
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"
    with_xmp = full[:2] + b"\xff\xe1" + (len(xmp) + 2).to_bytes(2, "big") + xmp + full[2:]
    assert read_exif(page, with_xmp)[0]["lat"] == pytest.approx(located["lat"])

    # Every truncation, and random damage inside the EXIF block: never a throw, never a wrong
    # coordinate, and latitude and longitude come together or not at all.
    rng = random.Random(7)
    app1 = full.index(b"Exif\x00\x00")
    damaged = [full[:cut] for cut in range(0, len(full), 5)]
    for _ in range(300):
        broken = bytearray(full)
        for _ in range(rng.randint(1, 6)):
            broken[rng.randrange(app1 - 4, app1 + 200)] = rng.randrange(256)
        damaged.append(bytes(broken))
    for result in read_exif(page, *damaged):
        assert set(result) == set(NOTHING)
        assert (result["lat"] is None) == (result["lon"] is None)
        if result["lat"] is not None:
            assert -90 <= result["lat"] <= 90 and -180 <= result["lon"] <= 180
        if result["captured_at"] is not None:
            assert re.fullmatch(
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", result["captured_at"]
            )


DOWNSCALE = """async ([b64, type]) => {
  const { downscale } = await import("/c/pictures.js");
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const blob = await downscale(new File([bytes], "original", { type }));
  if (!blob) return null;
  const image = await createImageBitmap(blob, { imageOrientation: "none" });
  const head = new Uint8Array(await blob.slice(0, 3).arrayBuffer());
  return { type: blob.type, width: image.width, height: image.height, size: blob.size,
           jpeg: head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff };
}"""


def test_downscale_keeps_the_long_side_within_2048_px_upright(
    caller_page: Callable[..., Page],
) -> None:
    page = caller_page()

    def downscale(data: bytes, kind: str = "image/jpeg") -> dict[str, Any] | None:
        result: dict[str, Any] | None = page.evaluate(
            DOWNSCALE, [base64.b64encode(data).decode(), kind]
        )
        return result

    big = jpeg(size=(3000, 2000), gps={1: "N", 2: (50.0, 0.0, 0.0), 3: "E", 4: (4.0, 0.0, 0.0)})
    result = downscale(big)
    assert result is not None
    assert result["type"] == "image/jpeg" and result["jpeg"]
    assert (result["width"], result["height"]) == (2048, 1365)
    # A phone's portrait picture is stored sideways with an orientation tag: sent upright.
    sideways = downscale(jpeg(size=(3000, 2000), orientation=6))
    assert sideways is not None and (sideways["width"], sideways["height"]) == (1365, 2048)
    small = downscale(jpeg(size=(800, 600)))
    assert small is not None and (small["width"], small["height"]) == (800, 600)
    png = io.BytesIO()
    Image.new("RGBA", (2100, 300), (0, 0, 0, 0)).save(png, "PNG")
    wide = downscale(png.getvalue(), "image/png")
    assert wide is not None and wide["type"] == "image/jpeg"
    assert (wide["width"], wide["height"]) == (2048, 293)
    # What the browser cannot decode (HEIC in Chromium, say) is left for the server.
    assert downscale(b"\x00\x00\x00\x18ftypheic" + bytes(64), "image/heic") is None


# The upload controls, against a stand-in for the route.


def picture(name: str, data: bytes, kind: str = "image/jpeg") -> FilePayload:
    return {"name": name, "mimeType": kind, "buffer": data}


def form_parts(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """A multipart body as {name: (filename, bytes)}."""
    boundary = request.headers["content-type"].split("boundary=")[1].strip('"').encode()
    parts = {}
    body = request.post_data_buffer or b""
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        assert name is not None
        parts[name.group(1).decode()] = (
            filename.group(1).decode() if filename else None,
            data[:-2],
        )
    return parts


def test_a_caller_sends_pictures_retries_and_is_told_why_one_was_refused(
    browser: Browser, start_server: Any
) -> None:
    server: LiveServer = start_server()
    server.cli("org", "create", "--slug", "north", "--name", "PSAP North", "--region", "BE")
    key = server.cli("apikey", "create", "--org", "north", "--name", "cad").strip().splitlines()[-1]
    link = httpx.post(
        f"{server.url}/api/v1/invites",
        json={"phone": "+32470123456", "send_sms": False, "language": "en"},
        headers={"Authorization": f"Bearer {key}"},
    ).json()["link"]
    token = link.split("#", 1)[1]

    seen: list[Request] = []
    answers: list[Callable[[Route], None]] = []

    def stand_in(route: Route, request: Request) -> None:
        seen.append(request)
        answers.pop(0)(route)

    def refuse(status: int, code: str, message: str) -> Callable[[Route], None]:
        body = {"error": {"code": code, "message": message}}
        return lambda route: route.fulfill(status=status, json=body)

    created = {"media": {"id": "med_1", "kind": "picture"}}
    answers += [
        lambda route: route.abort("connectionreset"),
        lambda route: route.fulfill(status=201, json=created),
    ]
    en = json.loads((I18N / "en.json").read_text())

    context = browser.new_context(
        viewport={"width": 360, "height": 740},  # a small phone, held in one hand
        is_mobile=True,
        has_touch=True,
        locale="en-GB",
        timezone_id="Europe/Brussels",
    )
    try:
        page = context.new_page()
        errors = watch_errors(page)
        page.route("**/api/v1/caller/media", stand_in)
        page.goto(link)
        # The controls show (and listen) once the link is open, as a caller sees them.
        expect(page.locator("#actions")).to_be_visible()
        take = page.get_by_label("Take a picture")
        choose = page.get_by_label("Choose a picture")
        expect(take).to_have_attribute("capture", "environment")
        expect(choose).to_have_attribute("accept", "image/*")
        for label in page.locator("label.pick").all():  # big, full width, one thumb away
            box = label.bounding_box()
            assert box is not None and box["height"] >= 56 and box["width"] >= 300
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 360

        gps = {1: "S", 2: (33.0, 52.0, 4.8), 3: "E", 4: (151.0, 12.0, 36.0), 0x1F: 12.0}
        original = jpeg(size=(4000, 3000), gps=gps, taken="2026:11:24 07:59:41", offset="+11:00")
        choose.set_input_files(picture("IMG_0001.jpg", original))
        items = page.locator("#sent-pictures > li")
        first = items.first
        expect(first).to_have_attribute("data-state", "failed")
        expect(first.locator(".shot-text")).to_have_text(en["err_network"])
        retry = first.get_by_role("button", name=en["retry_upload"])
        expect(retry).to_be_focused()
        retry.click()
        expect(first).to_have_attribute("data-state", "sent")
        expect(first).to_have_attribute("data-media-id", "med_1")
        expect(first.locator(".shot-text")).to_have_text(en["sent"])
        expect(first.locator("img.thumb")).to_be_visible()
        expect(page.locator("#pictures-status")).to_have_text(en["sent"])

        assert len(seen) == 2
        keys = {request.headers["idempotency-key"] for request in seen}
        assert len(keys) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{22}", keys.pop())
        assert all(request.headers["x-showme-link"] == token for request in seen)
        tried, sent = form_parts(seen[0]), form_parts(seen[1])
        assert tried == sent  # the same bytes and fields, under the same key
        filename, stored = sent["picture"]
        assert filename == "picture.jpg"
        with Image.open(io.BytesIO(stored)) as image:
            assert (image.format, image.size) == ("JPEG", (2048, 1536))
        assert float(sent["lat"][1]) == pytest.approx(-degrees((33.0, 52.0, 4.8)), abs=1e-6)
        assert float(sent["lon"][1]) == pytest.approx(degrees((151.0, 12.0, 36.0)), abs=1e-6)
        assert float(sent["accuracy_m"][1]) == 12.0
        assert sent["captured_at"][1] == b"2026-11-24T07:59:41+11:00"

        # Refusals: a translated message where the page has one, else the server's own words;
        # nothing to retry, but the caller can always take another picture. Newest first.
        answers.append(refuse(413, "picture_too_large", "Too large."))
        take.set_input_files(picture("a.jpg", jpeg()))
        expect(items).to_have_count(2)
        expect(items.first).to_have_attribute("data-state", "failed")
        expect(items.first.locator(".shot-text")).to_have_text(en["err_picture_too_large"])
        expect(items.first.get_by_role("button")).to_be_hidden()
        expect(page.locator("#pictures-alert")).to_have_text(en["err_picture_too_large"])
        answers.append(refuse(422, "invalid_input", "The capture time is not a time."))
        take.set_input_files(picture("b.jpg", jpeg()))
        expect(items).to_have_count(3)
        expect(items.first.locator(".shot-text")).to_have_text("The capture time is not a time.")
        # A file the browser cannot decode goes as it is, under its own name.
        answers.append(lambda route: route.fulfill(status=201, json={"media": {"id": "med_2"}}))
        heic = b"\x00\x00\x00\x18ftypheic" + bytes(64)
        choose.set_input_files(picture("IMG_2.HEIC", heic, "image/heic"))
        expect(items.first).to_have_attribute("data-state", "sent")
        assert form_parts(seen[-1]) == {"picture": ("IMG_2.HEIC", heic)}
        expect(items.nth(3)).to_have_attribute("data-media-id", "med_1")

        # The dispatcher ended the session meanwhile: the page says so, as on opening.
        answers.append(refuse(410, "link_ended", "This link has ended."))
        take.set_input_files(picture("c.jpg", jpeg()))
        expect(page.locator("#problem")).to_have_attribute("data-problem", "ended")
        expect(page.locator("#problem-title")).to_have_text(en["ended_title"])
        expect(page.locator("#actions")).to_be_hidden()
        assert answers == []
        assert errors == []
    finally:
        context.close()


def test_every_language_has_every_text() -> None:
    texts = {path.stem: json.loads(path.read_text()) for path in I18N.glob("*.json")}
    assert set(texts) == {"en", "fr", "nl", "de"}
    for language, strings in texts.items():
        assert strings.keys() == texts["en"].keys(), language
        assert all(value.strip() for value in strings.values()), language
