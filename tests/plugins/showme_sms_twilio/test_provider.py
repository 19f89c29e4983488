"""The Twilio SMS provider against a local fake of Twilio's API: what is sent, how every answer
maps onto ShowMe's contract (docs/sms.md), signed status reports and ``showme check``."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import structlog

from showme_core.config import Settings
from showme_core.providers import (
    SMS_STATUS_RANK,
    CallbackRefused,
    OutgoingSms,
    SmsCallback,
    SmsError,
    SmsNotSent,
    SmsOutcomeUnknown,
    SmsProvider,
    SmsReceipt,
    SmsStatus,
)
from showme_sms_twilio import (
    TwilioCheckError,
    TwilioSettings,
    TwilioSms,
    compute_signature,
    is_valid,
    showme_register_sms_providers,
)
from tests.plugins.showme_sms_twilio.fake_twilio import (
    ACCOUNT_SID,
    API_KEY,
    API_SECRET,
    AUTH_TOKEN,
    FROM_NUMBER,
    SERVICE_SID,
    CallbackReceiver,
    FakeTwilio,
    Received,
    twilio_signature,
)

BODY = "Emergency services: show us the scene https://showme.example.org/c/SECRETLINK123"
PUBLIC = "https://showme.example.org"


def options(base: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": FROM_NUMBER,
        "base_url": base,
        "timeout": 5,
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def provider(base_url: str, **overrides: Any) -> TwilioSms:
    return TwilioSms(TwilioSettings.from_options(options(base_url, **overrides)))


def outgoing(to: str = "+32470123456", callback_url: str | None = None) -> OutgoingSms:
    return OutgoingSms(
        message_id="msg-0001",
        organisation_id="org-1",
        invite_id="inv-1",
        to=to,
        body=BODY,
        segments=1,
        callback_url=callback_url,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there any more


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def as_callback(url: str, headers: dict[str, str], body: bytes) -> SmsCallback:
    """A report as the core hands it over: lower-case headers, the form parsed, the raw body."""
    return SmsCallback(
        method="POST",
        url=url,
        headers={name.lower(): value for name, value in headers.items()},
        query=dict(parse_qsl(urlsplit(url).query)),
        form=dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True)),
        body=body,
    )


def received_callback(base: str, received: Received) -> SmsCallback:
    return as_callback(base + received.path, received.headers, received.body)


# -- signatures --------------------------------------------------------------------------------

VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]


def test_signature_matches_twilios_documented_test_vector() -> None:
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert compute_signature("12345", VECTOR_URL, VECTOR_PARAMS) == expected
    assert compute_signature("12345", VECTOR_URL, reversed(VECTOR_PARAMS)) == expected
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS) == expected  # the fake agrees
    assert is_valid("12345", VECTOR_URL, VECTOR_PARAMS, expected)
    # Twilio may or may not write the default port into the URL it signs.
    assert is_valid(
        "12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", VECTOR_PARAMS, expected
    )
    ported = compute_signature(
        "12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", VECTOR_PARAMS
    )
    assert ported != expected
    assert is_valid("12345", VECTOR_URL, VECTOR_PARAMS, ported)
    # Anything else changed is refused.
    assert not is_valid("12345", VECTOR_URL, VECTOR_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ")
    assert not is_valid("54321", VECTOR_URL, VECTOR_PARAMS, expected)
    assert not is_valid(
        "12345", "http://mycompany.com/myapp.php?foo=1&bar=2", VECTOR_PARAMS, expected
    )
    assert not is_valid(
        "12345", "https://mycompany.com:8443/myapp.php?foo=1&bar=2", VECTOR_PARAMS, expected
    )
    assert not is_valid("12345", VECTOR_URL, [*VECTOR_PARAMS, ("Extra", "1")], expected)
    assert not is_valid("12345", VECTOR_URL, VECTOR_PARAMS, None)
    assert not is_valid("", VECTOR_URL, VECTOR_PARAMS, expected)


def test_repeated_parameters_are_signed_in_sorted_order() -> None:
    params = [("b", "2"), ("a", "z"), ("a", "y")]
    expected = twilio_signature("t", "http://h/x", params)
    assert compute_signature("t", "http://h/x", params) == expected
    # The http default port works the same way as https's.
    assert is_valid("t", "http://h:80/x", params, expected)


# -- sending -----------------------------------------------------------------------------------


async def test_send_posts_the_documented_form_with_basic_auth(fake_twilio: FakeTwilio) -> None:
    twilio = provider(fake_twilio.url)
    assert isinstance(twilio, SmsProvider) and twilio.name == "twilio"
    callback = f"{PUBLIC}/api/v1/sms/callbacks/twilio/msg-0001/s3cret"
    receipt = await twilio.send(outgoing(callback_url=callback))

    assert receipt.status is SmsStatus.SENT  # Twilio said "queued": it has the message
    assert receipt.provider_message_id is not None
    assert re.fullmatch(r"SM[0-9a-f]{32}", receipt.provider_message_id)
    assert receipt.error_code is None and not receipt.definitive
    [seen] = fake_twilio.seen
    assert seen.method == "POST"
    assert seen.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert (seen.user, seen.password) == (ACCOUNT_SID, AUTH_TOKEN)
    assert seen.form == {
        "To": ["+32470123456"],
        "From": [FROM_NUMBER],
        "Body": [BODY],
        "StatusCallback": [callback],
    }
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.headers["accept"] == "application/json"


async def test_send_through_a_messaging_service_with_an_api_key(fake_twilio: FakeTwilio) -> None:
    twilio = provider(
        fake_twilio.url,
        api_key=API_KEY,
        api_secret=API_SECRET,
        messaging_service_sid=SERVICE_SID,
        **{"from": None},
    )
    receipt = await twilio.send(outgoing(callback_url=f"{PUBLIC}/cb"))
    assert receipt.status is SmsStatus.SENT  # "accepted" by the service
    [seen] = fake_twilio.seen
    assert (seen.user, seen.password) == (API_KEY, API_SECRET)
    assert seen.form["MessagingServiceSid"] == [SERVICE_SID]
    assert "From" not in seen.form
    assert seen.form["StatusCallback"] == [f"{PUBLIC}/cb"]


async def test_without_auth_token_no_reports_are_asked_for_nor_accepted(
    fake_twilio: FakeTwilio,
) -> None:
    twilio = provider(fake_twilio.url, auth_token=None, api_key=API_KEY, api_secret=API_SECRET)
    receipt = await twilio.send(outgoing(callback_url=f"{PUBLIC}/cb"))
    assert receipt.status is SmsStatus.SENT
    assert "StatusCallback" not in fake_twilio.seen[0].form
    headers, body = fake_twilio.signed(f"{PUBLIC}/cb", [("MessageSid", "SM1")])
    with pytest.raises(CallbackRefused, match="auth_token"):
        twilio.parse_callback(as_callback(f"{PUBLIC}/cb", headers, body))


async def test_no_callback_url_means_no_status_callback(fake_twilio: FakeTwilio) -> None:
    await provider(fake_twilio.url).send(outgoing())
    assert "StatusCallback" not in fake_twilio.seen[0].form


@pytest.mark.parametrize(
    ("to", "error", "definitive", "code"),
    [
        ("+15005550001", SmsError.INVALID_NUMBER, True, 21211),
        ("+15005550002", SmsError.NOT_SMS_CAPABLE, False, 21612),
        ("+15005550003", SmsError.PROVIDER_ERROR, False, 21408),
        ("+15005550004", SmsError.OPTED_OUT, True, 21610),
        ("+15005550009", SmsError.NOT_SMS_CAPABLE, True, 21614),
    ],
)
async def test_twilio_refusals_map_to_showme_errors(
    fake_twilio: FakeTwilio, to: str, error: SmsError, definitive: bool, code: int
) -> None:
    receipt = await provider(fake_twilio.url).send(outgoing(to=to))
    assert receipt.status is SmsStatus.FAILED
    assert receipt.error_code == error.value
    assert receipt.definitive is definitive
    assert receipt.provider_message_id is None
    assert receipt.error_message is not None
    assert receipt.error_message.startswith(f"Twilio {code}: ")


async def test_a_sender_twilio_does_not_know_is_a_provider_error(fake_twilio: FakeTwilio) -> None:
    receipt = await provider(fake_twilio.url, **{"from": "+15005550007"}).send(outgoing())
    assert receipt.status is SmsStatus.FAILED
    assert receipt.error_code == SmsError.PROVIDER_ERROR.value
    assert not receipt.definitive  # another provider, with its own sender, may do better
    assert receipt.error_message is not None and "21606" in receipt.error_message


async def test_refused_credentials_are_auth_failed(fake_twilio: FakeTwilio) -> None:
    receipt = await provider(fake_twilio.url, auth_token="wrong").send(outgoing())
    assert receipt.status is SmsStatus.FAILED
    assert receipt.error_code == SmsError.AUTH_FAILED.value
    assert not receipt.definitive
    assert receipt.error_message == "Twilio 20003: Authenticate (authentication failed)"
    api_key = provider(fake_twilio.url, api_key=API_KEY, api_secret="wrong")
    assert (await api_key.send(outgoing())).error_code == SmsError.AUTH_FAILED.value
    assert fake_twilio.seen[-1].user == API_KEY


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("0.5", 0.5), (None, None), ("soon", None), ("http-date", 30.0)],
)
async def test_429_is_not_sent_with_retry_after(
    fake_twilio: FakeTwilio, header: str | None, expected: float | None
) -> None:
    if header == "http-date":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=31), usegmt=True)
    fake_twilio.fail_next("429", **({} if header is None else {"retry_after": header}))
    with pytest.raises(SmsNotSent, match="20429") as caught:
        await provider(fake_twilio.url).send(outgoing())
    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(expected, abs=2)


async def test_5xx_and_unreadable_answers_are_outcome_unknown(fake_twilio: FakeTwilio) -> None:
    twilio = provider(fake_twilio.url)
    fake_twilio.fail_next("500")
    with pytest.raises(SmsOutcomeUnknown, match="HTTP 500"):
        await twilio.send(outgoing())
    fake_twilio.fail_next("garbage")
    with pytest.raises(SmsOutcomeUnknown, match="201"):
        await twilio.send(outgoing())
    assert len(fake_twilio.seen) == 2


async def test_connection_refused_is_not_sent() -> None:
    twilio = provider(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(SmsNotSent, match="could not be reached") as caught:
        await twilio.send(outgoing())
    assert caught.value.retry_after is None


async def test_read_timeout_is_outcome_unknown(fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next("hang")
    twilio = provider(fake_twilio.url, timeout=0.3)
    with pytest.raises(SmsOutcomeUnknown, match="ReadTimeout"):
        await twilio.send(outgoing())
    assert len(fake_twilio.seen) == 1  # the request did arrive: Twilio may have sent it


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), SmsNotSent),
        (httpx.ConnectTimeout("timed out"), SmsNotSent),
        (httpx.PoolTimeout("timed out"), SmsNotSent),
        (httpx.ReadTimeout("timed out"), SmsOutcomeUnknown),
        (httpx.WriteTimeout("timed out"), SmsOutcomeUnknown),
        (httpx.RemoteProtocolError("Server disconnected"), SmsOutcomeUnknown),
        (httpx.ReadError("reset"), SmsOutcomeUnknown),
    ],
)
async def test_transport_errors_say_whether_the_request_left(
    error: Exception, outcome: type[Exception]
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    settings = TwilioSettings.from_options(options("https://api.twilio.com"))
    with pytest.raises(outcome):
        await TwilioSms(settings, transport=httpx.MockTransport(fail)).send(outgoing())


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, {"sid": "SMx", "status": "sending"}, SmsReceipt(SmsStatus.SENT, "SMx")),
        (200, {"sid": "SMx", "status": "sent"}, SmsReceipt(SmsStatus.SENT, "SMx")),
        (201, {"sid": "SMx", "status": "something-new"}, SmsReceipt(SmsStatus.SENT, "SMx")),
        (
            201,
            {"sid": "SMx", "status": "failed", "error_code": 30007, "error_message": None},
            SmsReceipt(
                SmsStatus.FAILED,
                "SMx",
                "provider_error",
                "Twilio 30007: message failed (filtered by the carrier)",
            ),
        ),
        (
            403,
            {"message": "Forbidden"},
            SmsReceipt(SmsStatus.FAILED, None, "auth_failed", "Twilio: Forbidden"),
        ),
        (
            400,
            b"<html>bad request</html>",
            SmsReceipt(
                SmsStatus.FAILED,
                None,
                "provider_error",
                "Twilio: HTTP 400 without a Twilio error body",
            ),
        ),
    ],
)
async def test_answers_read_from_a_scripted_transport(
    status: int, body: dict[str, Any] | bytes, expected: SmsReceipt
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    settings = TwilioSettings.from_options(options("https://api.twilio.com"))
    twilio = TwilioSms(settings, transport=httpx.MockTransport(answer))
    assert await twilio.send(outgoing()) == expected


async def test_20429_without_http_429_is_still_not_sent() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": 20429, "message": "Too Many Requests"})

    settings = TwilioSettings.from_options(options("https://api.twilio.com"))
    with pytest.raises(SmsNotSent, match="slow down"):
        await TwilioSms(settings, transport=httpx.MockTransport(answer)).send(outgoing())


async def test_neither_body_nor_number_is_logged(
    fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    twilio = provider(fake_twilio.url)
    # structlog may already be routed to the standard library (when an app was built earlier in
    # the session, with its loggers cached) or not: look at both.
    with structlog.testing.capture_logs() as logs, caplog.at_level(logging.DEBUG):
        await twilio.send(outgoing())
        await twilio.send(outgoing(to="+15005550001"))
        fake_twilio.fail_next("hang")
        with pytest.raises(SmsOutcomeUnknown):
            await provider(fake_twilio.url, timeout=0.3).send(outgoing())
    text = repr(logs) + caplog.text + repr([r.msg for r in caplog.records])
    assert "twilio answered" in text and "twilio answer lost" in text
    assert "SECRETLINK123" not in text and "+32470123456" not in text
    assert "+15005550001" not in text
    assert AUTH_TOKEN not in text


# -- status reports ----------------------------------------------------------------------------


async def send_with_reports(
    fake: FakeTwilio, receiver: CallbackReceiver
) -> tuple[TwilioSms, str, str]:
    twilio = provider(fake.url)
    path = "/api/v1/sms/callbacks/twilio/msg-0001/s3cret"
    receipt = await twilio.send(outgoing(callback_url=receiver.url + path))
    assert receipt.provider_message_id is not None
    return twilio, receipt.provider_message_id, path


async def test_signed_reports_posted_by_twilio_are_read(
    fake_twilio: FakeTwilio, receiver: CallbackReceiver
) -> None:
    twilio, sid, path = await send_with_reports(fake_twilio, receiver)
    answers = await asyncio.to_thread(fake_twilio.report, sid, "sent", "delivered")
    assert answers == [204, 204]
    wait_until(lambda: len(receiver.received) == 2)
    reports = [received_callback(receiver.url, item) for item in receiver.received]
    assert all(item.path == path for item in receiver.received)
    parsed = [twilio.parse_callback(report) for report in reports]
    assert [p.receipt.status for p in parsed] == [SmsStatus.SENT, SmsStatus.DELIVERED]
    assert all(p.provider_message_id == sid for p in parsed)
    assert all(p.receipt.provider_message_id == sid for p in parsed)
    assert parsed[1].receipt.error_code is None


async def test_out_of_order_and_repeated_reports_end_where_twilio_ended(
    fake_twilio: FakeTwilio, receiver: CallbackReceiver
) -> None:
    twilio, sid, _path = await send_with_reports(fake_twilio, receiver)
    order = ("delivered", "sent", "queued", "delivered", "sending")
    await asyncio.to_thread(fake_twilio.report, sid, *order)
    wait_until(lambda: len(receiver.received) == len(order))
    receipts = [
        twilio.parse_callback(received_callback(receiver.url, item)).receipt
        for item in receiver.received
    ]
    assert [r.status for r in receipts] == [
        SmsStatus.DELIVERED,
        SmsStatus.SENT,
        SmsStatus.SENT,
        SmsStatus.DELIVERED,
        SmsStatus.SENT,
    ]
    # The core's rule (forward only) applied to these receipts ends at delivered.
    status = SmsStatus.SENT
    for receipt in receipts:
        if SMS_STATUS_RANK[receipt.status] > SMS_STATUS_RANK[status]:
            status = receipt.status
    assert status is SmsStatus.DELIVERED


@pytest.mark.parametrize(
    ("reported", "status", "error", "definitive", "words"),
    [
        (("undelivered", 30003), SmsStatus.UNDELIVERED, "undelivered", False, "unreachable"),
        (("undelivered", 30005), SmsStatus.UNDELIVERED, "undelivered", False, "unknown handset"),
        (("undelivered", 30008), SmsStatus.UNDELIVERED, "undelivered", False, "unknown error"),
        ("undelivered", SmsStatus.UNDELIVERED, "undelivered", False, "message undelivered"),
        (("failed", 30006), SmsStatus.FAILED, "not_sms_capable", True, "landline"),
        (("failed", 30007), SmsStatus.FAILED, "provider_error", False, "filtered"),
        (("failed", 30003), SmsStatus.FAILED, "undelivered", False, "unreachable"),
        (("failed", 30004), SmsStatus.FAILED, "opted_out", True, "blocked"),
        (("failed", 21610), SmsStatus.FAILED, "opted_out", True, "unsubscribed"),
        (("failed", 30001), SmsStatus.FAILED, "rate_limited", False, "queue overflow"),
        (("failed", 39999), SmsStatus.FAILED, "provider_error", False, "Twilio 39999"),
        ("failed", SmsStatus.FAILED, "provider_error", False, "message failed"),
        ("canceled", SmsStatus.FAILED, "provider_error", False, "message canceled"),
        ("read", SmsStatus.DELIVERED, None, False, None),
        ("accepted", SmsStatus.SENT, None, False, None),
        ("scheduled", SmsStatus.SENT, None, False, None),
        ("receiving", SmsStatus.SENT, None, False, None),
        ("partially_delivered", SmsStatus.SENT, None, False, None),
        ("a-status-from-the-future", SmsStatus.SENT, None, False, None),
    ],
)
async def test_report_statuses_and_error_codes(
    fake_twilio: FakeTwilio,
    reported: str | tuple[str, int],
    status: SmsStatus,
    error: str | None,
    definitive: bool,
    words: str | None,
) -> None:
    twilio = provider(fake_twilio.url)
    sid = (await twilio.send(outgoing(callback_url=f"{PUBLIC}/cb/1"))).provider_message_id
    assert sid is not None
    name, code = reported if isinstance(reported, tuple) else (reported, None)
    headers, body = fake_twilio.signed(f"{PUBLIC}/cb/1", fake_twilio.report_params(sid, name, code))
    report = twilio.parse_callback(as_callback(f"{PUBLIC}/cb/1", headers, body))
    assert report.provider_message_id == sid
    assert report.receipt.status is status
    assert report.receipt.error_code == error
    assert report.receipt.definitive is definitive
    if words is None:
        assert report.receipt.error_message is None
    else:
        assert report.receipt.error_message is not None
        assert words in report.receipt.error_message


async def test_reports_signed_with_or_without_the_default_port_are_accepted(
    fake_twilio: FakeTwilio,
) -> None:
    twilio = provider(fake_twilio.url)
    sid = (await twilio.send(outgoing(callback_url=f"{PUBLIC}/cb/2"))).provider_message_id
    assert sid is not None
    params = fake_twilio.report_params(sid, "delivered")
    path = "/api/v1/sms/callbacks/twilio/msg-0001/s3cret?x=1"
    for signed_url, public_url in [
        (f"https://showme.example.org:443{path}", f"https://showme.example.org{path}"),
        (f"https://showme.example.org{path}", f"https://showme.example.org:443{path}"),
        (f"https://showme.example.org{path}", f"https://showme.example.org{path}"),
        (f"http://showme.example.org:80{path}", f"http://showme.example.org{path}"),
    ]:
        headers, body = fake_twilio.signed(signed_url, params)
        report = twilio.parse_callback(as_callback(public_url, headers, body))
        assert report.receipt.status is SmsStatus.DELIVERED
    # A non-default port is part of the URL like anything else.
    headers, body = fake_twilio.signed(f"https://showme.example.org:8443{path}", params)
    with pytest.raises(CallbackRefused):
        twilio.parse_callback(as_callback(f"https://showme.example.org{path}", headers, body))


async def test_forged_tampered_or_unsigned_reports_are_refused(fake_twilio: FakeTwilio) -> None:
    twilio = provider(fake_twilio.url)
    sid = (await twilio.send(outgoing(callback_url=f"{PUBLIC}/cb/3"))).provider_message_id
    assert sid is not None
    url = f"{PUBLIC}/cb/3"
    params = fake_twilio.report_params(sid, "undelivered", 30003)
    headers, body = fake_twilio.signed(url, params)
    assert twilio.parse_callback(as_callback(url, headers, body)).receipt.status is (
        SmsStatus.UNDELIVERED
    )

    def refused(callback: SmsCallback, match: str) -> None:
        with pytest.raises(CallbackRefused, match=match):
            twilio.parse_callback(callback)

    # Missing header.
    unsigned = {k: v for k, v in headers.items() if k != "X-Twilio-Signature"}
    refused(as_callback(url, unsigned, body), "no X-Twilio-Signature")
    refused(as_callback(url, {**headers, "X-Twilio-Signature": ""}, body), "no X-Twilio")
    # Forged: signed with another token, or garbage.
    forged = dict(headers)
    forged["X-Twilio-Signature"] = twilio_signature("not-the-token", url, params)
    refused(as_callback(url, forged, body), "does not match")
    forged["X-Twilio-Signature"] = base64.b64encode(b"x" * 20).decode()
    refused(as_callback(url, forged, body), "does not match")
    # Tampered: a parameter changed or added after signing, or another URL (another message).
    tampered = body.replace(b"MessageStatus=undelivered", b"MessageStatus=delivered")
    assert tampered != body
    refused(as_callback(url, headers, tampered), "does not match")
    refused(as_callback(url, headers, body + b"&Extra=1"), "does not match")
    refused(as_callback(f"{PUBLIC}/cb/4", headers, body), "does not match")
    # Parsed form only (no raw body), tampered the same way.
    callback = as_callback(url, headers, body)
    form = {**callback.form, "ErrorCode": "30006"}
    refused(SmsCallback("POST", url, callback.headers, {}, form, b""), "does not match")
    untouched = SmsCallback("POST", url, callback.headers, {}, callback.form, b"")
    assert twilio.parse_callback(untouched).provider_message_id == sid
    # Not a form at all.
    refused(as_callback(url, headers, b"\xff\xfe"), "not a form")


async def test_signed_but_malformed_or_foreign_reports_are_refused(
    fake_twilio: FakeTwilio,
) -> None:
    twilio = provider(fake_twilio.url)
    url = f"{PUBLIC}/cb/5"
    for params, match in [
        ([("MessageStatus", "delivered")], "no MessageSid"),
        ([("MessageSid", "SM1")], "no MessageSid or MessageStatus"),
        (
            [
                ("MessageSid", "SM1"),
                ("MessageStatus", "delivered"),
                ("AccountSid", "AC" + "1" * 32),
            ],
            "another Twilio account",
        ),
    ]:
        headers, body = fake_twilio.signed(url, params)
        with pytest.raises(CallbackRefused, match=match):
            twilio.parse_callback(as_callback(url, headers, body))
    # Legacy field names alone are enough.
    headers, body = fake_twilio.signed(url, [("SmsSid", "SM1"), ("SmsStatus", "sent")])
    report = twilio.parse_callback(as_callback(url, headers, body))
    assert (report.provider_message_id, report.receipt.status) == ("SM1", SmsStatus.SENT)


# -- showme check ------------------------------------------------------------------------------


async def test_check_describes_the_account(fake_twilio: FakeTwilio) -> None:
    detail = await provider(fake_twilio.url).check()
    assert detail == (
        f"Twilio account {ACCOUNT_SID} (status active), sending from {FROM_NUMBER}; "
        "delivery reports verified with the auth token"
    )
    assert fake_twilio.seen[-1].method == "GET"
    assert fake_twilio.seen[-1].path == f"/2010-04-01/Accounts/{ACCOUNT_SID}.json"
    via_key = provider(
        fake_twilio.url,
        auth_token=None,
        api_key=API_KEY,
        api_secret=API_SECRET,
        messaging_service_sid=SERVICE_SID,
        **{"from": None},
    )
    detail = await via_key.check()
    assert f"sending from {SERVICE_SID}" in detail and "no delivery reports" in detail
    assert fake_twilio.seen[-1].user == API_KEY


async def test_check_explains_what_is_wrong(fake_twilio: FakeTwilio) -> None:
    with pytest.raises(TwilioCheckError, match="refused the credentials") as caught:
        await provider(fake_twilio.url, auth_token="wrong").check()
    assert "wrong" not in str(caught.value)  # no secret in the verdict
    with pytest.raises(TwilioCheckError, match="cannot reach Twilio"):
        await provider(f"http://127.0.0.1:{closed_port()}").check()
    fake_twilio.account_status = "suspended"
    with pytest.raises(TwilioCheckError, match="is suspended"):
        await provider(fake_twilio.url).check()
    fake_twilio.fail_next("500")
    with pytest.raises(TwilioCheckError, match="HTTP 500"):
        await provider(fake_twilio.url).check()


# -- settings and registration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"account_sid": "nope"}, "account_sid"),
        ({"account_sid": None}, "account_sid"),
        ({"auth_token": None}, "needs credentials"),
        ({"api_key": "SKshort", "api_secret": "x"}, "api_key"),
        ({"api_key": API_KEY}, "api_secret"),
        ({"api_secret": "x"}, "api_key"),
        ({"from": None}, "exactly one sender"),
        ({"messaging_service_sid": SERVICE_SID}, "exactly one sender"),
        ({"from": None, "messaging_service_sid": "MGnope"}, "messaging_service_sid"),
        ({"from": "0470 12 34 56"}, "'from'"),
        ({"from": "ThisIsTooLongASender"}, "'from'"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"auth-token": "x"}, "does not know the setting"),
        ({"auth_token": 12345}, "must be a string"),
    ],
)
def test_settings_are_checked_with_clear_messages(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TwilioSettings.from_options(options("https://api.twilio.com", **overrides))


def test_good_settings() -> None:
    for overrides in (
        {},
        {"from": "ShowMe"},
        {"from": "12345"},
        {"api_key": API_KEY, "api_secret": "s"},  # with auth_token too: reports verified
        {"api_key": API_KEY, "api_secret": "s", "auth_token": None},
        {"from": None, "messaging_service_sid": SERVICE_SID, "timeout": "2.5"},
    ):
        settings = TwilioSettings.from_options(options("https://api.twilio.com/", **overrides))
        assert settings.base_url == "https://api.twilio.com"
    assert TwilioSettings.from_options(
        options("https://x", api_key=API_KEY, api_secret="s")
    ).credentials == (API_KEY, "s")
    assert TwilioSettings.from_options(options("https://x")).credentials == (
        ACCOUNT_SID,
        AUTH_TOKEN,
    )


def test_the_hook_registers_one_provider_named_twilio(tmp_path: Any) -> None:
    registered: list[Any] = []
    config = Settings(data_dir=tmp_path, plugin_settings={"sms_twilio": options("https://x")})
    showme_register_sms_providers(registered.append, config)
    [twilio] = registered
    assert isinstance(twilio, TwilioSms) and twilio.name == "twilio"
    assert twilio.messages_url == f"https://x/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    with pytest.raises(ValueError, match=r"\[plugin_settings.sms_twilio\] is missing"):
        showme_register_sms_providers(registered.append, Settings(data_dir=tmp_path))
