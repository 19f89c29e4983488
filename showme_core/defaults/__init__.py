"""Embedded defaults, registered directly so the service always starts with no plugin installed:
the outbox SMS provider and filesystem media storage."""

from __future__ import annotations

from types import ModuleType

from showme_core.defaults import sms_outbox, storage_fs

DEFAULT_PLUGINS: list[ModuleType] = [sms_outbox, storage_fs]
