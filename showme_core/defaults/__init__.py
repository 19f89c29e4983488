"""Embedded defaults, registered directly so the service always starts with no plugin installed:
the outbox SMS provider, filesystem media storage and static ICE servers."""

from __future__ import annotations

from types import ModuleType

from showme_core.defaults import ice_static, sms_outbox, storage_fs

DEFAULT_PLUGINS: list[ModuleType] = [sms_outbox, storage_fs, ice_static]
