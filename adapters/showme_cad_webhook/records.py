"""Reading every record of a kind through ``plugin_state``, which lists newest first in pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from showme_core.plugin_state import PluginState, Record

PAGE = 500  # plugin_state's own ceiling for one list


async def every_record(
    state: PluginState,
    kind: str,
    *,
    organisation_id: str | None = None,
    not_before: datetime | None = None,
    before: datetime | None = None,
) -> AsyncIterator[Record]:
    """Each record of ``kind``, newest first (created at or after ``not_before`` only)."""
    # A page ends at some creation time; the next page asks for records up to and including it,
    # so that records created in the same microsecond as the page's last are not skipped, and
    # drops the ones it already gave.
    at_edge: set[str] = set()
    while True:
        page = await state.list(kind, organisation_id=organisation_id, limit=PAGE, before=before)
        fresh = [record for record in page if record.id not in at_edge]
        for record in fresh:
            if not_before is not None and record.created_at < not_before:
                return
            yield record
        if len(page) < PAGE or not fresh:
            return
        edge = min(record.created_at for record in page)
        at_edge = {record.id for record in page if record.created_at == edge}
        before = edge + timedelta(microseconds=1)
