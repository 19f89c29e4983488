"""Delivery reports: the shared token, both report shapes, the status mapping, malformed reports
(docs/sms-clickatell.md, "Delivery reports")."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from showme_core.providers import CallbackRefused, SmsCallback, SmsError, SmsStatus
from showme_sms_clickatell import ONE_API_STATUSES, PLATFORM_STATUSES, ClickatellSms
from tests.plugins.showme_sms_clickatell.fake_clickatell import FakeClickatell
from tests.plugins.showme_sms_clickatell.test_send import TOKEN, outgoing, provider

URL = "https://showme.test/api/v1/sms/callbacks/clickatell"


def report(
    body: bytes | dict[str, Any] | list[Any] = b"",
    *,
    token: str | None = TOKEN,
    method: str = "POST",
    form: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> SmsCallback:
    raw = json.dumps(body).encode() if isinstance(body, dict | list) else body
    params = {**({"token": token} if token is not None else {}), **(query or {})}
    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    if form:
        raw = urlencode(form).encode()
    return SmsCallback(
        method=method,
        url=f"{URL}?{urlencode(params)}" if params else URL,
        headers={"content-type": content_type},
        query=params,
        form=form or {},
        body=raw,
    )


def one_api(code: int, status: str, message_id: str = "api-1", client: str = "msg-1") -> bytes:
    return json.dumps(
        {
            "integrationId": "fa8090815f05d5ed015f0b5b56080cd2",
            "integrationName": "ShowMe",
            "event": {
                "messageStatusUpdate": [
                    {
                        "channel": "sms",
                        "messageId": message_id,
                        "clientMessageId": client,
                        "statusCode": code,
                        "status": status,
                        "timestamp": 1506607698000,
                    }
                ]
            },
        }
    ).encode()


def platform(code: int | None, status: str | None, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "integrationName": "ShowMe",
        "messageId": "api-1",
        "requestId": "req-1",
        "clientMessageId": "msg-1",
        "to": "32470000001",
        "statusDescription": "words",
        "timestamp": 1506607698000,
        **extra,
    }
    if code is not None:
        fields["statusCode"] = code
    if status is not None:
        fields["status"] = status
    return fields


@pytest.fixture
def sms() -> ClickatellSms:
    return ClickatellSms(api_key="k", callback_token=TOKEN)


def test_a_report_with_the_right_token_names_both_ids(sms: ClickatellSms) -> None:
    parsed = sms.parse_callback(report(one_api(5, "DEVICE_ACK")))
    assert parsed.message_id == "msg-1"
    assert parsed.provider_message_id == "api-1"
    assert parsed.receipt.status is SmsStatus.DELIVERED
    assert parsed.receipt.provider_message_id == "api-1"
    assert parsed.receipt.error_code is None


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper()])
def test_a_wrong_or_missing_token_is_refused(sms: ClickatellSms, token: str | None) -> None:
    with pytest.raises(CallbackRefused):
        sms.parse_callback(report(one_api(5, "DEVICE_ACK"), token=token))


def test_without_a_configured_token_every_report_is_refused() -> None:
    sms = ClickatellSms(api_key="k")
    for token in (None, "", TOKEN):
        with pytest.raises(CallbackRefused, match="callback_token"):
            sms.parse_callback(report(one_api(5, "DEVICE_ACK"), token=token))


EXPECTED: dict[str, tuple[SmsStatus, SmsError | None]] = {
    "UNKNOWN": (SmsStatus.SENT, None),
    "QUEUED": (SmsStatus.SENT, None),
    "SCHEDULED": (SmsStatus.SENT, None),
    "SENT_TO_SUPPLIER": (SmsStatus.SENT, None),
    "DEVICE_ACK": (SmsStatus.DELIVERED, None),
    "READ": (SmsStatus.DELIVERED, None),
    "EXPIRED": (SmsStatus.UNDELIVERED, SmsError.UNDELIVERED),
    "STOPPED_BY_USER": (SmsStatus.FAILED, SmsError.PROVIDER_ERROR),
    "STOPPED_BY_ADMIN": (SmsStatus.FAILED, SmsError.PROVIDER_ERROR),
    "DELIVERY_FAILURE": (SmsStatus.UNDELIVERED, SmsError.UNDELIVERED),
    "EMULATED": (SmsStatus.FAILED, SmsError.PROVIDER_ERROR),
    "INSUFFICIENT_ACCOUNT_BALANCE": (SmsStatus.FAILED, SmsError.NO_BALANCE),
    "VOLUME_LIMIT": (SmsStatus.FAILED, SmsError.RATE_LIMITED),
    "VOLUME_LIMIT_DAILY": (SmsStatus.FAILED, SmsError.RATE_LIMITED),
    "VOLUME_LIMIT_MONTHLY": (SmsStatus.FAILED, SmsError.RATE_LIMITED),
    "RECIPIENT_DOES_NOT_EXIST": (SmsStatus.FAILED, SmsError.INVALID_NUMBER),
    "ROUTING_ERROR": (SmsStatus.FAILED, SmsError.PROVIDER_ERROR),
    # Platform (flat) names
    "MESSAGE_UNKNOWN": (SmsStatus.SENT, None),
    "MESSAGE_QUEUED": (SmsStatus.SENT, None),
    "DELIVERED_TO_GATEWAY": (SmsStatus.SENT, None),
    "RECEIVED_BY_RECIPIENT": (SmsStatus.DELIVERED, None),
    "ERROR_WITH_MESSAGE": (SmsStatus.FAILED, SmsError.PROVIDER_ERROR),
    "USER_CANCELLED_MESSAGE_DELIVERY": (SmsStatus.FAILED, SmsError.PROVIDER_ERROR),
    "ERROR_DELIVERING_MESSAGE": (SmsStatus.UNDELIVERED, SmsError.UNDELIVERED),
    "RECEIVED_BY_GATEWAY": (SmsStatus.SENT, None),
    "MESSAGE_EXPIRED": (SmsStatus.UNDELIVERED, SmsError.UNDELIVERED),
    "MESSAGE_SCHEDULED": (SmsStatus.SENT, None),
    "OUT_OF_CREDIT": (SmsStatus.FAILED, SmsError.NO_BALANCE),
    "CLICKATELL_CANCELLED_MESSAGE_DELIVERY": (SmsStatus.FAILED, SmsError.PROVIDER_ERROR),
    "MAXIMUM_MT_LIMIT_EXCEEDED": (SmsStatus.FAILED, SmsError.RATE_LIMITED),
}


def check(parsed_status: SmsStatus, error_code: str | None, name: str) -> None:
    status, error = EXPECTED[name]
    assert parsed_status is status, name
    assert error_code == (error.value if error else None), name


@pytest.mark.parametrize(("code", "name"), [(c, n) for c, (n, _) in ONE_API_STATUSES.items()])
def test_one_api_statuses_by_code_and_by_name(sms: ClickatellSms, code: int, name: str) -> None:
    for body in (one_api(code, name), one_api(code, ""), one_api(0, name)):
        parsed = sms.parse_callback(report(body))
        check(parsed.receipt.status, parsed.receipt.error_code, name)
        assert (parsed.message_id, parsed.provider_message_id) == ("msg-1", "api-1")


@pytest.mark.parametrize(("code", "name"), [(c, n) for c, (n, _) in PLATFORM_STATUSES.items()])
def test_platform_statuses_by_code_and_by_name(sms: ClickatellSms, code: int, name: str) -> None:
    for body in (platform(code, name), platform(code, None), platform(None, name)):
        parsed = sms.parse_callback(report(body))
        check(parsed.receipt.status, parsed.receipt.error_code, name)


def test_a_failure_keeps_clickatells_words(sms: ClickatellSms) -> None:
    parsed = sms.parse_callback(
        report(platform(7, "ERROR_DELIVERING_MESSAGE", statusDescription="Handset off"))
    )
    assert parsed.receipt.error_message == (
        "Clickatell status 7 ERROR_DELIVERING_MESSAGE Handset off"
    )


def test_the_status_name_wins_over_a_number_of_the_other_table(sms: ClickatellSms) -> None:
    # 4 is "sent to supplier" in the One API and "received by recipient" on the Platform.
    flat_named = sms.parse_callback(report(platform(4, "SENT_TO_SUPPLIER")))
    assert flat_named.receipt.status is SmsStatus.SENT
    assert sms.parse_callback(report(platform(4, None))).receipt.status is SmsStatus.DELIVERED
    assert sms.parse_callback(report(one_api(4, ""))).receipt.status is SmsStatus.SENT
    lower = sms.parse_callback(report(one_api(0, "device_ack")))
    assert lower.receipt.status is SmsStatus.DELIVERED


@pytest.mark.parametrize(
    "body",
    [
        one_api(999, "SOMETHING_NEW"),
        one_api(999, ""),
        json.dumps(platform(999, "SOMETHING_NEW")).encode(),
        json.dumps(platform(None, None)).encode(),
        json.dumps(platform("four", 4)).encode(),  # type: ignore[arg-type]
    ],
)
def test_an_unknown_status_changes_nothing(sms: ClickatellSms, body: bytes) -> None:
    parsed = sms.parse_callback(report(body))
    assert parsed.receipt.status is SmsStatus.SENT
    assert parsed.receipt.error_code is None


def test_a_report_naming_only_one_id_is_accepted(sms: ClickatellSms) -> None:
    by_ours = sms.parse_callback(report(platform(4, None, messageId=None)))
    assert (by_ours.message_id, by_ours.provider_message_id) == ("msg-1", None)
    by_theirs = sms.parse_callback(report(platform(4, None, clientMessageId="")))
    assert (by_theirs.message_id, by_theirs.provider_message_id) == (None, "api-1")


@pytest.mark.parametrize(
    "callback",
    [
        report(b"{not json"),
        report(b"<xml/>"),
        report([1, 2]),
        report(b'"a string"'),
        report({"integrationId": "x", "event": {"moText": [{"messageId": "m"}]}}),
        report({"integrationId": "x", "event": {"messageStatusUpdate": []}}),
        report({"integrationId": "x", "event": {"messageStatusUpdate": ["x"]}}),
        report({"integrationId": "x", "event": "status"}),
        report(platform(4, None, messageId=None, clientMessageId=None)),
        report(b""),
        report(b"   "),
        report(method="GET"),
    ],
    ids=[
        "not-json",
        "xml",
        "a-list",
        "a-string",
        "a-reply-not-a-status",
        "no-update",
        "update-not-an-object",
        "event-not-an-object",
        "no-message-id",
        "empty",
        "blank",
        "get-without-fields",
    ],
)
def test_a_malformed_report_is_refused(sms: ClickatellSms, callback: SmsCallback) -> None:
    with pytest.raises(CallbackRefused):
        sms.parse_callback(callback)


def test_a_form_encoded_report(sms: ClickatellSms) -> None:
    fields = {"messageId": "api-1", "clientMessageId": "msg-1", "statusCode": "004"}
    parsed = sms.parse_callback(report(form=fields))
    assert parsed.receipt.status is SmsStatus.DELIVERED
    assert parsed.message_id == "msg-1"


def test_a_get_report_in_the_query(sms: ClickatellSms) -> None:
    query = {"messageId": "api-1", "clientMessageId": "msg-1", "status": "MESSAGE_EXPIRED"}
    parsed = sms.parse_callback(report(method="GET", query=query))
    assert parsed.receipt.status is SmsStatus.UNDELIVERED
    assert (parsed.message_id, parsed.provider_message_id) == ("msg-1", "api-1")


@pytest.mark.parametrize("shape", ["one_api", "platform"])
async def test_the_fakes_report_for_a_sent_message(fake: FakeClickatell, shape: str) -> None:
    sms = provider(fake)
    receipt = await sms.send(outgoing(message_id="msg-77"))
    assert receipt.provider_message_id is not None
    code, name = (5, "DEVICE_ACK") if shape == "one_api" else (4, "RECEIVED_BY_RECIPIENT")
    body = fake.status_report(receipt.provider_message_id, code, name, shape=shape)
    parsed = sms.parse_callback(report(body))
    assert parsed.message_id == "msg-77"
    assert parsed.provider_message_id == receipt.provider_message_id
    assert parsed.receipt.status is SmsStatus.DELIVERED
