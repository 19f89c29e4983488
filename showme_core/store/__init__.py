"""Storage of state: the relational store and its migrations."""

from __future__ import annotations

from showme_core.store.database import Database

__all__ = ["Database"]
