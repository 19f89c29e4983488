"""Audit records: who did what to which object, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core.clock import utcnow
from showme_core.store.schema import audit_records


async def record(
    conn: AsyncConnection,
    *,
    organisation_id: str | None,
    actor: str,
    action: str,
    subject: str | None = None,
    **details: Any,
) -> None:
    await conn.execute(
        audit_records.insert().values(
            organisation_id=organisation_id,
            actor=actor,
            action=action,
            subject=subject,
            details=details,
            created_at=utcnow(),
        )
    )
