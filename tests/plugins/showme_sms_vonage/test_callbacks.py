"""Delivery receipts: GET and POST, signatures, what each status and err-code means."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from showme_core.providers import (
    SMS_STATUS_RANK,
    CallbackRefused,
    OutgoingSms,
    SmsCallback,
    SmsError,
    SmsStatus,
)
from showme_sms_vonage import VonageSms, signature
from tests.plugins.showme_sms_vonage.fake_vonage import (
    API_KEY,
    API_SECRET,
    SIGNATURE_SECRET,
    FakeVonage,
    SentMessage,
    signed,
)

PUBLIC = "https://showme.example.org"
PER_MESSAGE = f"{PUBLIC}/api/v1/sms/callbacks/vonage/0123456789abcdef/per-message-secret"
ACCOUNT_WIDE = f"{PUBLIC}/api/v1/sms/callbacks/vonage"


def get(params: dict[str, str], url: str = PER_MESSAGE) -> SmsCallback:
    return SmsCallback("GET", f"{url}?{urlencode(params)}", {}, dict(params), {}, b"")


def post_form(params: dict[str, str], url: str = PER_MESSAGE) -> SmsCallback:
    body = urlencode(params).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    return SmsCallback("POST", url, headers, {}, dict(params), body)


def post_json(params: dict[str, object], url: str = PER_MESSAGE) -> SmsCallback:
    body = json.dumps(params).encode()
    return SmsCallback("POST", url, {"content-type": "application/json"}, {}, {}, body)


@pytest.fixture
async def message(vonage: VonageSms, fake: FakeVonage) -> SentMessage:
    """A message really sent through the fake, so receipts carry its ids."""
    await vonage.send(
        OutgoingSms(
            message_id="0123456789abcdef",
            organisation_id="org",
            invite_id="inv",
            to="+32470123456",
            body="Open this link: https://showme.example.org/c/#token",
            segments=1,
            callback_url=PER_MESSAGE,
        )
    )
    return fake.sent[0]


def signing(fake: FakeVonage, method: str = "md5hash") -> VonageSms:
    return VonageSms(
        API_KEY,
        API_SECRET,
        "ShowMe",
        signature_secret=SIGNATURE_SECRET,
        signature_method=method,
        base_url=fake.url,
    )


async def test_a_get_receipt_is_read(
    vonage: VonageSms, fake: FakeVonage, message: SentMessage
) -> None:
    report = vonage.parse_callback(get(fake.dlr(message)))
    assert report.receipt.status is SmsStatus.DELIVERED
    # ShowMe's own id comes back in client-ref: the core finds the message by it (every part of
    # a long text has its own messageId), so the report does not pin a part's id.
    assert report.message_id == "0123456789abcdef"
    assert report.provider_message_id is None
    assert report.receipt.provider_message_id is None


async def test_a_post_form_receipt_is_read(
    vonage: VonageSms, fake: FakeVonage, message: SentMessage
) -> None:
    report = vonage.parse_callback(post_form(fake.dlr(message, "failed", "2")))
    assert report.receipt.status is SmsStatus.UNDELIVERED
    assert report.receipt.error_code == SmsError.UNDELIVERED.value
    assert report.message_id == "0123456789abcdef"


async def test_a_post_json_receipt_is_read(
    vonage: VonageSms, fake: FakeVonage, message: SentMessage
) -> None:
    report = vonage.parse_callback(post_json(dict(fake.dlr(message, "accepted"))))
    assert report.receipt.status is SmsStatus.SENT


async def test_a_receipt_without_client_ref_names_vonage_s_id(
    vonage: VonageSms, fake: FakeVonage, message: SentMessage
) -> None:
    params = fake.dlr(message)
    del params["client-ref"]
    report = vonage.parse_callback(get(params))
    assert report.message_id is None
    assert report.provider_message_id == message.message_ids[0]
    assert report.receipt.provider_message_id == message.message_ids[0]


@pytest.mark.parametrize("missing", ["messageId", "status"])
async def test_a_receipt_without_its_id_or_status_is_refused(
    vonage: VonageSms, fake: FakeVonage, message: SentMessage, missing: str
) -> None:
    params = fake.dlr(message)
    del params[missing]
    with pytest.raises(CallbackRefused):
        vonage.parse_callback(get(params))
    with pytest.raises(CallbackRefused):
        vonage.parse_callback(post_form(params))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
def test_a_post_body_that_is_no_receipt_is_refused(vonage: VonageSms, body: bytes) -> None:
    callback = SmsCallback("POST", PER_MESSAGE, {}, {}, {}, body)
    with pytest.raises(CallbackRefused):
        vonage.parse_callback(callback)


STATUSES = [
    ("accepted", "0", SmsStatus.SENT, None, False),
    ("buffered", "0", SmsStatus.SENT, None, False),
    ("unknown", "0", SmsStatus.SENT, None, False),
    ("something-new", "0", SmsStatus.SENT, None, False),
    ("delivered", "0", SmsStatus.DELIVERED, None, False),
    ("DELIVERED", "0", SmsStatus.DELIVERED, None, False),
    ("expired", "0", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "1", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "2", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "3", SmsStatus.UNDELIVERED, SmsError.INVALID_NUMBER, True),
    ("failed", "4", SmsStatus.UNDELIVERED, SmsError.OPTED_OUT, True),
    ("failed", "5", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "6", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("expired", "7", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "8", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "9", SmsStatus.UNDELIVERED, SmsError.OPTED_OUT, True),
    ("failed", "10", SmsStatus.UNDELIVERED, SmsError.PROVIDER_ERROR, False),
    ("failed", "11", SmsStatus.UNDELIVERED, SmsError.PROVIDER_ERROR, False),
    ("failed", "12", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "13", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "14", SmsStatus.UNDELIVERED, SmsError.NOT_SMS_CAPABLE, True),
    ("failed", "15", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "99", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("failed", "57", SmsStatus.UNDELIVERED, SmsError.UNDELIVERED, False),
    ("rejected", "0", SmsStatus.FAILED, SmsError.PROVIDER_ERROR, False),
    ("rejected", "6", SmsStatus.FAILED, SmsError.UNDELIVERED, False),
    ("rejected", "9", SmsStatus.FAILED, SmsError.OPTED_OUT, True),
]


@pytest.mark.parametrize(("status", "err_code", "expected", "code", "definitive"), STATUSES)
async def test_each_status_and_err_code(
    vonage: VonageSms,
    fake: FakeVonage,
    message: SentMessage,
    status: str,
    err_code: str,
    expected: SmsStatus,
    code: SmsError | None,
    definitive: bool,
) -> None:
    receipt = vonage.parse_callback(get(fake.dlr(message, status, err_code))).receipt
    assert receipt.status is expected
    assert receipt.error_code == (code.value if code else None)
    assert receipt.definitive is definitive
    if code is not None:
        assert f"err-code {err_code}" in (receipt.error_message or "")


async def test_late_and_repeated_receipts_read_the_same_and_never_rank_higher(
    vonage: VonageSms, fake: FakeVonage, message: SentMessage
) -> None:
    delivered = vonage.parse_callback(get(fake.dlr(message, "delivered")))
    assert vonage.parse_callback(get(fake.dlr(message, "delivered"))) == delivered
    late = vonage.parse_callback(get(fake.dlr(message, "accepted")))
    # The core moves a status forward only: a late "accepted" ranks below "delivered".
    assert SMS_STATUS_RANK[late.receipt.status] < SMS_STATUS_RANK[delivered.receipt.status]


async def test_an_unsigned_receipt_on_the_account_wide_url_is_refused(
    vonage: VonageSms, fake: FakeVonage, message: SentMessage
) -> None:
    with pytest.raises(CallbackRefused, match="account-wide"):
        vonage.parse_callback(get(fake.dlr(message), url=ACCOUNT_WIDE))


# ------------------------------------------------------------------------------- signatures


def test_signature_matches_vonage_s_own_sdk_vectors() -> None:
    """The expected values are those of Vonage's Python SDK tests
    (vonage-python-sdk, http_client/tests/test_auth.py): key 'signature_secret'."""
    params = {"param1": "value1", "param2": "value2", "timestamp": "1234567890"}
    assert signature(params, "signature_secret", "sha256") == (
        "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"
    )
    assert signature(params, "signature_secret", "md5") == "724c2bf6ca423c36e20631b11d1c5753"
    special = {"param1": "value&1", "param2": "value=2", "timestamp": "1234567890"}
    assert signature(special, "signature_secret", "md5") == "2bbf0abafb2c55e5af6231513896a2ac"
    with_sig = {"param": "value", "timestamp": "1234567890", "sig": "ignored"}
    assert signature(with_sig, "signature_secret", "md5") == "655a4d0b7f064dff438defc52b012cf5"


@pytest.mark.parametrize("method", ["md5hash", "md5", "sha1", "sha256", "sha512"])
async def test_a_rightly_signed_receipt_is_accepted(
    fake: FakeVonage, message: SentMessage, method: str
) -> None:
    provider = signing(fake, method)
    params = signed(fake.dlr(message), method=method)
    assert provider.parse_callback(get(params)).receipt.status is SmsStatus.DELIVERED
    assert provider.parse_callback(post_form(params)).receipt.status is SmsStatus.DELIVERED
    assert provider.parse_callback(post_json(dict(params))).receipt.status is SmsStatus.DELIVERED
    # Signed, it may also come to the account-wide URL.
    assert provider.parse_callback(get(params, url=ACCOUNT_WIDE)).message_id == message.client_ref


async def test_values_with_ampersands_and_equals_are_signed_as_vonage_does(
    fake: FakeVonage, message: SentMessage
) -> None:
    provider = signing(fake, "sha256")
    params = signed({**fake.dlr(message), "network-code": "a&b=c"}, method="sha256")
    assert provider.parse_callback(get(params)).receipt.status is SmsStatus.DELIVERED


@pytest.mark.parametrize(
    "forge",
    [
        "wrong secret",
        "tampered status",
        "no sig",
        "no timestamp",
        "other method",
    ],
)
async def test_a_wrongly_signed_receipt_is_refused(
    fake: FakeVonage, message: SentMessage, forge: str
) -> None:
    provider = signing(fake, "sha256")
    params = signed(fake.dlr(message, "failed", "1"), method="sha256")
    if forge == "wrong secret":
        params = signed(fake.dlr(message, "failed", "1"), secret="guessed", method="sha256")
    elif forge == "tampered status":
        params["status"] = "delivered"
    elif forge == "no sig":
        del params["sig"]
    elif forge == "no timestamp":
        del params["timestamp"]
    elif forge == "other method":
        params = signed(fake.dlr(message, "failed", "1"), method="sha1")
    with pytest.raises(CallbackRefused):
        provider.parse_callback(get(params))


async def test_an_unsigned_receipt_is_refused_when_signing_is_set(
    fake: FakeVonage, message: SentMessage
) -> None:
    with pytest.raises(CallbackRefused, match="unsigned"):
        signing(fake).parse_callback(get(fake.dlr(message)))
