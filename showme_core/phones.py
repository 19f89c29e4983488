"""Phone numbers: validated and normalised to E.164 with the organisation's default region."""

from __future__ import annotations

import phonenumbers

from showme_core.errors import InvalidInput


def normalise(raw: str, default_region: str) -> str:
    """Return ``raw`` in E.164, or raise ``InvalidInput`` saying why it is not a phone number."""
    text = raw.strip()
    if not text:
        raise InvalidInput("Enter the caller's phone number.", code="invalid_phone")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(
            f"{raw!r} is not a phone number ({_reason(exc)}).", code="invalid_phone"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        region = phonenumbers.region_code_for_number(number) or default_region
        raise InvalidInput(
            f"{raw!r} is not a valid phone number for {region}; "
            "check the digits or give the number with its country code (+...).",
            code="invalid_phone",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _reason(exc: phonenumbers.NumberParseException) -> str:
    return {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, "unreadable")


def region_is_known(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def region_of(e164: str) -> str | None:
    """The country (phone region) of a normalised number, e.g. ``BE`` for +32..."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None
