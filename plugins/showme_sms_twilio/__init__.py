"""SMS through Twilio Programmable Messaging (``docs/sms-twilio.md``).

Activate with ``plugins = ["sms_twilio"]`` and a ``[plugin_settings.sms_twilio]`` block; the
provider is named ``twilio`` in an organisation's ``sms_providers`` chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from showme_core.hookspecs import hookimpl
from showme_core.providers import SmsProvider
from showme_sms_twilio.provider import (
    DEFAULT_BASE_URL,
    DOMAIN,
    NAME,
    TwilioCheckError,
    TwilioSettings,
    TwilioSms,
)
from showme_sms_twilio.signature import compute_signature, is_valid

if TYPE_CHECKING:
    from showme_core.config import Settings

__all__ = [
    "DEFAULT_BASE_URL",
    "DOMAIN",
    "NAME",
    "TwilioCheckError",
    "TwilioSettings",
    "TwilioSms",
    "compute_signature",
    "is_valid",
    "showme_register_sms_providers",
]

log = structlog.get_logger("showme.sms.twilio")


@hookimpl
def showme_register_sms_providers(
    register: Callable[[SmsProvider], None], config: Settings
) -> None:
    settings = TwilioSettings.from_options(config.settings_for(DOMAIN))
    if not settings.auth_token:
        log.warning(
            "sms_twilio has no auth_token: delivery reports are not requested, messages stay 'sent'"
        )
    register(TwilioSms(settings))
