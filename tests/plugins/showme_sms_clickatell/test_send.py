"""Sending through the fake Clickatell: the request, acceptance, every mapped refusal in both error
shapes, and the transport failures (docs/sms-clickatell.md, "Sending")."""

from __future__ import annotations

import email.utils
import logging
import socket
import time
from typing import Any

import httpx
import pytest

from showme_core.providers import (
    OutgoingSms,
    SmsError,
    SmsNotSent,
    SmsOutcomeUnknown,
    SmsStatus,
)
from showme_sms_clickatell import ClickatellSms
from tests.plugins.showme_sms_clickatell.fake_clickatell import FakeClickatell

TOKEN = "callback-token-" + "x" * 20
LINK = "https://showme.test/c/CALLER-SECRET-LINK"


def provider(fake: FakeClickatell, **options: Any) -> ClickatellSms:
    values: dict[str, Any] = {
        "api_key": fake.api_key,
        "callback_token": TOKEN,
        "base_url": fake.url,
        "timeout": 5.0,
        **options,
    }
    return ClickatellSms(**values)


def outgoing(to: str = "+32470000001", message_id: str = "msg-0001") -> OutgoingSms:
    return OutgoingSms(
        message_id=message_id,
        organisation_id="org-1",
        invite_id="inv-1",
        to=to,
        body=f"Emergency services: show us where you are {LINK}",
        segments=1,
        callback_url=f"https://showme.test/api/v1/sms/callbacks/clickatell/{message_id}/s3cret",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_an_accepted_message_is_sent_with_the_documented_request(
    fake: FakeClickatell,
) -> None:
    receipt = await provider(fake, sender="+32470999999").send(outgoing())
    assert receipt.status is SmsStatus.SENT
    assert receipt.provider_message_id in fake.sent
    assert fake.sent[receipt.provider_message_id] == "msg-0001"  # clientMessageId echoed
    assert receipt.error_code is None and not receipt.definitive
    request = fake.requests[-1]
    assert (request.method, request.path) == ("POST", "/messages")
    assert request.headers["authorization"] == fake.api_key  # the raw key, no "Bearer"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.body == {
        "content": outgoing().body,
        "to": ["32470000001"],
        "clientMessageId": "msg-0001",
        "from": "32470999999",
    }


async def test_without_a_sender_clickatell_picks_its_default(fake: FakeClickatell) -> None:
    receipt = await provider(fake).send(outgoing())
    assert receipt.status is SmsStatus.SENT
    assert "from" not in fake.requests[-1].body


async def test_acceptance_in_the_flat_shape(fake: FakeClickatell) -> None:
    fake.flat_errors = True
    receipt = await provider(fake).send(outgoing())
    assert receipt.status is SmsStatus.SENT
    assert fake.sent[str(receipt.provider_message_id)] == "msg-0001"


REFUSALS = [
    # (Clickatell error code, SmsError, definitive)
    (25, SmsError.INVALID_NUMBER, True),
    (26, SmsError.OPTED_OUT, True),
    (27, SmsError.NOT_SMS_CAPABLE, True),
    (105, SmsError.INVALID_NUMBER, True),
    (1, SmsError.AUTH_FAILED, False),
    (2, SmsError.AUTH_FAILED, False),
    (3, SmsError.AUTH_FAILED, False),
    (7, SmsError.AUTH_FAILED, False),
    (46, SmsError.AUTH_FAILED, False),
    (108, SmsError.AUTH_FAILED, False),
    (20, SmsError.NO_BALANCE, False),
    (23, SmsError.PROVIDER_ERROR, False),
    (44, SmsError.PROVIDER_ERROR, False),
]


@pytest.mark.parametrize("flat", [False, True], ids=["one-api-shape", "flat-shape"])
@pytest.mark.parametrize("level", ["message", "request"])
@pytest.mark.parametrize(("code", "error", "definitive"), REFUSALS)
async def test_every_mapped_refusal_in_both_shapes(
    fake: FakeClickatell,
    flat: bool,
    level: str,
    code: int,
    error: SmsError,
    definitive: bool,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.flat_errors = flat
    prefix = "9" if level == "message" else "8"
    caplog.set_level(logging.DEBUG)
    receipt = await provider(fake).send(outgoing(to=f"+32470{prefix}{code:03d}"))
    assert receipt.status is SmsStatus.FAILED
    assert receipt.error_code == error.value
    assert receipt.definitive is definitive
    assert receipt.provider_message_id is None
    assert f"error {code}" in (receipt.error_message or "")
    # The body holds the caller's link: it is never in a receipt or the log.
    assert LINK not in (receipt.error_message or "")
    # Wherever structlog writes (the stdlib logging once the app configured it, else stdout).
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert "clickatell refused a message" in logged
    assert LINK not in logged and fake.api_key not in logged


async def test_a_refusal_inside_a_4xx_answer_is_read_too(fake: FakeClickatell) -> None:
    # An invalid request answers 400 with a request-level error 21 ("payload malformed").
    bad = OutgoingSms("m", "o", "i", "not a number", "x", 1)
    receipt = await provider(fake).send(bad)
    assert (receipt.status, receipt.error_code) == (SmsStatus.FAILED, "provider_error")
    assert "HTTP 400, error 21" in (receipt.error_message or "")


@pytest.mark.parametrize("flat", [False, True])
async def test_a_wrong_key_is_auth_failed(fake: FakeClickatell, flat: bool) -> None:
    fake.flat_errors = flat
    receipt = await provider(fake, api_key="not-the-key").send(outgoing())
    assert (receipt.status, receipt.error_code) == (SmsStatus.FAILED, "auth_failed")
    assert not receipt.definitive
    assert ("error 108" if flat else "error 1:") in (receipt.error_message or "")
    assert "HTTP 401" in (receipt.error_message or "")


@pytest.mark.parametrize("flat", [False, True])
async def test_http_429_is_not_sent_with_retry_after(fake: FakeClickatell, flat: bool) -> None:
    fake.flat_errors = flat
    for number in ("+32470007429", "+32470008043"):  # bare 429; error 43 with 429
        with pytest.raises(SmsNotSent) as caught:
            await provider(fake).send(outgoing(to=number))
        assert caught.value.retry_after == 3.0
        assert "429" in str(caught.value)


async def test_error_43_in_an_accepted_request_is_not_sent_either(fake: FakeClickatell) -> None:
    with pytest.raises(SmsNotSent) as caught:
        await provider(fake).send(outgoing(to="+32470009043"))
    assert caught.value.retry_after is None
    assert "429" in str(caught.value)


async def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": when})

    sms = ClickatellSms(api_key="k", transport=httpx.MockTransport(answer))
    with pytest.raises(SmsNotSent) as caught:
        await sms.send(outgoing())
    assert caught.value.retry_after is not None and 25 <= caught.value.retry_after <= 31


@pytest.mark.parametrize(
    "number",
    [
        "+32470007500",  # bare 500
        "+32470007502",
        "+32470007503",
        "+32470008018",  # error 18 with 500
        "+32470008019",  # error 19 with 503
        "+32470009018",  # error 18 on the message inside a 202
        "+32470009019",
        "+32470007200",  # a 200 that is not JSON
        "+32470007202",  # a 202 without any message
    ],
)
async def test_5xx_and_unreadable_answers_are_outcome_unknown(
    fake: FakeClickatell, number: str
) -> None:
    with pytest.raises(SmsOutcomeUnknown):
        await provider(fake).send(outgoing(to=number))


@pytest.mark.parametrize(
    ("number", "error"),
    [
        ("+32470007400", SmsError.PROVIDER_ERROR),
        ("+32470007401", SmsError.AUTH_FAILED),
        ("+32470007403", SmsError.AUTH_FAILED),
        ("+32470007402", SmsError.NO_BALANCE),
        ("+32470007404", SmsError.PROVIDER_ERROR),
    ],
)
async def test_a_bare_4xx_is_a_refusal_by_its_status(
    fake: FakeClickatell, number: str, error: SmsError
) -> None:
    receipt = await provider(fake).send(outgoing(to=number))
    assert (receipt.status, receipt.error_code, receipt.definitive) == (
        SmsStatus.FAILED,
        error.value,
        False,
    )


async def test_a_hang_is_outcome_unknown_after_the_timeout(fake: FakeClickatell) -> None:
    started = time.monotonic()
    with pytest.raises(SmsOutcomeUnknown, match="in time"):
        await provider(fake, timeout=0.3).send(outgoing(to="+32470007000"))
    assert time.monotonic() - started < 5


async def test_connection_refused_is_not_sent() -> None:
    sms = ClickatellSms(api_key="k", base_url=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(SmsNotSent, match="could not be reached") as caught:
        await sms.send(outgoing())
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), SmsNotSent),  # DNS
        (httpx.ConnectTimeout("connect timed out"), SmsNotSent),
        (httpx.ReadTimeout("read timed out"), SmsOutcomeUnknown),
        (httpx.WriteTimeout("write timed out"), SmsOutcomeUnknown),
        (httpx.RemoteProtocolError("server disconnected"), SmsOutcomeUnknown),
        (httpx.ReadError("connection reset"), SmsOutcomeUnknown),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
async def test_transport_failures(failure: Exception, expected: type[Exception]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise failure

    sms = ClickatellSms(api_key="k", transport=httpx.MockTransport(answer))
    with pytest.raises(expected):
        await sms.send(outgoing())
