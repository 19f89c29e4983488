"""Sending through the fake Vonage: the request Vonage gets, and what each answer means."""

from __future__ import annotations

import socket
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
from showme_sms_vonage import VonageSms, is_gsm7
from tests.plugins.showme_sms_vonage.fake_vonage import API_KEY, API_SECRET, FakeVonage, magic

LINK = "https://showme.example.org/c/#s3cr3t-caller-token"
CALLBACK = "https://showme.example.org/api/v1/sms/callbacks/vonage/m1/per-message-secret"


def outgoing(
    to: str = "+32470123456",
    body: str = f"Emergency services ask you to show them the scene. Open this link: {LINK}",
    callback_url: str | None = CALLBACK,
) -> OutgoingSms:
    return OutgoingSms(
        message_id="0123456789abcdef0123456789abcdef",
        organisation_id="org",
        invite_id="inv",
        to=to,
        body=body,
        segments=1,
        callback_url=callback_url,
    )


async def test_an_accepted_message_is_sent_with_every_field(
    vonage: VonageSms, fake: FakeVonage
) -> None:
    receipt = await vonage.send(outgoing())
    assert receipt.status is SmsStatus.SENT
    [message] = fake.sent
    assert receipt.provider_message_id == message.message_ids[0]
    assert message.form == {
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "from": "ShowMe",
        "to": "32470123456",
        "text": outgoing().body,
        "client-ref": "0123456789abcdef0123456789abcdef",
        "callback": CALLBACK,
        "status-report-req": "1",
    }
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/sms/json")
    assert request.content_type.startswith("application/x-www-form-urlencoded")


async def test_without_a_public_url_no_delivery_report_is_asked(
    vonage: VonageSms, fake: FakeVonage
) -> None:
    await vonage.send(outgoing(callback_url=None))
    form = fake.sent[0].form
    assert "callback" not in form and "status-report-req" not in form


@pytest.mark.parametrize(
    ("body", "unicode"),
    [
        ("Open this link: https://x.example/c/#t", False),
        ("Ouvrez ce lien : scène, Öffnen, ñ, € [x]", False),  # GSM-7 and its extension table
        ("Otwórz ten link: ę ł ś", True),
        ("Откройте эту ссылку", True),
        ("📷 https://x.example", True),
    ],
)
async def test_text_outside_gsm7_goes_as_unicode(
    vonage: VonageSms, fake: FakeVonage, body: str, unicode: bool
) -> None:
    assert is_gsm7(body) is not unicode
    await vonage.send(outgoing(body=body))
    assert ("type" in fake.sent[0].form) is unicode
    if unicode:
        assert fake.sent[0].form["type"] == "unicode"


async def test_a_long_text_in_two_parts_is_one_sent_message(
    vonage: VonageSms, fake: FakeVonage
) -> None:
    receipt = await vonage.send(outgoing(body="x" * 200))
    assert len(fake.sent[0].message_ids) == 2
    assert receipt.status is SmsStatus.SENT
    assert receipt.provider_message_id == fake.sent[0].message_ids[0]


# (status, variant) -> error code and whether it ends the chain.
REFUSALS = [
    ((2, 0), SmsError.PROVIDER_ERROR, False),
    ((3, 0), SmsError.INVALID_NUMBER, True),  # "Invalid to address"
    ((3, 1), SmsError.PROVIDER_ERROR, False),  # "Invalid from param": our sender, not the number
    ((4, 0), SmsError.AUTH_FAILED, False),
    ((6, 0), SmsError.INVALID_NUMBER, True),
    ((7, 0), SmsError.OPTED_OUT, True),
    ((8, 0), SmsError.AUTH_FAILED, False),
    ((9, 0), SmsError.NO_BALANCE, False),
    ((11, 0), SmsError.PROVIDER_ERROR, False),
    ((12, 0), SmsError.PROVIDER_ERROR, False),
    ((14, 0), SmsError.AUTH_FAILED, False),
    ((15, 0), SmsError.PROVIDER_ERROR, False),
    ((29, 0), SmsError.PROVIDER_ERROR, False),  # not in the plugin's table: a provider error
]


@pytest.mark.parametrize(("magic_status", "code", "definitive"), REFUSALS)
async def test_each_refusal_is_a_failed_receipt(
    vonage: VonageSms,
    fake: FakeVonage,
    magic_status: tuple[int, int],
    code: SmsError,
    definitive: bool,
) -> None:
    status, variant = magic_status
    receipt = await vonage.send(outgoing(to=magic(status, variant)))
    assert receipt.status is SmsStatus.FAILED
    assert receipt.error_code == code.value
    assert receipt.definitive is definitive
    assert receipt.provider_message_id is None
    assert receipt.error_message and f"status {status}" in receipt.error_message
    assert LINK not in receipt.error_message
    assert not fake.sent


@pytest.mark.parametrize("status", [1, 10])
async def test_throttling_is_not_sent(vonage: VonageSms, status: int) -> None:
    with pytest.raises(SmsNotSent) as caught:
        await vonage.send(outgoing(to=magic(status)))
    assert "429" in str(caught.value)  # how the core tells a rate limit (sms.deliver)
    assert LINK not in str(caught.value)


async def test_an_internal_error_is_an_unknown_outcome(vonage: VonageSms) -> None:
    with pytest.raises(SmsOutcomeUnknown, match="status 5"):
        await vonage.send(outgoing(to=magic(5)))


async def test_a_part_accepted_then_throttled_is_a_refusal_not_a_retry(
    vonage: VonageSms, fake: FakeVonage
) -> None:
    receipt = await vonage.send(outgoing(to=magic(1, variant=2)))
    assert receipt.status is SmsStatus.FAILED
    assert receipt.error_code == SmsError.RATE_LIMITED.value
    assert receipt.definitive is False
    assert receipt.provider_message_id == fake.sent[0].message_ids[0]
    assert "1 of 2 parts" in (receipt.error_message or "")


async def test_a_part_accepted_then_refused_keeps_the_refusal(vonage: VonageSms) -> None:
    receipt = await vonage.send(outgoing(to=magic(7, variant=2)))
    assert (receipt.status, receipt.error_code, receipt.definitive) == (
        SmsStatus.FAILED,
        SmsError.OPTED_OUT.value,
        True,
    )


async def test_wrong_credentials_are_auth_failed(fake: FakeVonage) -> None:
    provider = VonageSms(API_KEY, "not-the-secret", "ShowMe", base_url=fake.url)
    receipt = await provider.send(outgoing())
    assert (receipt.status, receipt.error_code) == (SmsStatus.FAILED, SmsError.AUTH_FAILED.value)
    assert "not-the-secret" not in (receipt.error_message or "")


async def test_http_429_is_not_sent_with_retry_after(vonage: VonageSms, fake: FakeVonage) -> None:
    fake.mode = "429"
    with pytest.raises(SmsNotSent) as caught:
        await vonage.send(outgoing())
    assert caught.value.retry_after == 2.0


async def test_http_401_is_auth_failed(vonage: VonageSms, fake: FakeVonage) -> None:
    fake.mode = "401"
    receipt = await vonage.send(outgoing())
    assert (receipt.status, receipt.error_code) == (SmsStatus.FAILED, SmsError.AUTH_FAILED.value)


@pytest.mark.parametrize("mode", ["500", "garbage", "empty"])
async def test_5xx_and_unreadable_answers_are_unknown(
    vonage: VonageSms, fake: FakeVonage, mode: str
) -> None:
    fake.mode = mode
    with pytest.raises(SmsOutcomeUnknown) as caught:
        await vonage.send(outgoing())
    assert LINK not in str(caught.value)


async def test_no_answer_in_time_is_unknown(fake: FakeVonage) -> None:
    fake.mode = "hang"
    provider = VonageSms(API_KEY, API_SECRET, "ShowMe", base_url=fake.url, timeout=0.3)
    with pytest.raises(SmsOutcomeUnknown, match="ReadTimeout"):
        await provider.send(outgoing())
    assert len(fake.requests) == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_not_sent() -> None:
    provider = VonageSms(
        API_KEY, API_SECRET, "ShowMe", base_url=f"http://127.0.0.1:{closed_port()}"
    )
    with pytest.raises(SmsNotSent, match="ConnectError"):
        await provider.send(outgoing())


async def test_a_connect_timeout_is_not_sent(
    vonage: VonageSms, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def post(*_args: Any, **_kwargs: Any) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out")

    monkeypatch.setattr(httpx.AsyncClient, "post", post)
    with pytest.raises(SmsNotSent, match="ConnectTimeout"):
        await vonage.send(outgoing())
