"""The pigeon SMS provider: keeps what it is given, refuses numbers it is told to refuse."""

from __future__ import annotations

from showme_core.providers import OutgoingSms, SmsReceipt, SmsStatus

LOFT: list[OutgoingSms] = []


class PigeonSmsProvider:
    name = "pigeon"

    def __init__(self, fail_numbers: set[str]) -> None:
        self.fail_numbers = fail_numbers

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        if sms.to in self.fail_numbers:
            return SmsReceipt(
                SmsStatus.FAILED,
                error_code="invalid_number",
                error_message="The pigeon cannot find this number.",
                definitive=True,
            )
        LOFT.append(sms)
        return SmsReceipt(SmsStatus.SENT, provider_message_id=f"pigeon-{len(LOFT)}")
