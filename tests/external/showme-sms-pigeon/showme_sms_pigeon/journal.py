"""The pigeon's journal: a durable event consumer writing each event it is given to a file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any


class PigeonJournal:
    """Appends ``<organisation> <event id> <type>`` per event, flushed to disk before it returns,
    so a test can read what it acknowledged even after the service was killed."""

    name = "pigeon-journal"

    def __init__(self, path: Path, fail_first: set[str], delay: float = 0.0) -> None:
        self.path = path
        self.fail_first = set(fail_first)  # event types refused once (a consumer crashing)
        self.delay = delay  # seconds per event: a slow consumer, behind the commits

    async def deliver(self, event: Any) -> None:
        if event.type in self.fail_first:
            self.fail_first.discard(event.type)
            raise RuntimeError(f"the pigeon dropped a {event.type}")
        await asyncio.sleep(self.delay)
        line = f"{event.organisation_id} {event.id} {event.type}\n"
        await asyncio.to_thread(self._append, line)

    async def check(self) -> str:
        """For ``showme check``: the journal's directory must take a file."""
        if not os.access(self.path.parent, os.W_OK):
            raise RuntimeError(f"cannot write in {self.path.parent}")
        return f"journal in {self.path.parent}"

    def _append(self, line: str) -> None:
        with self.path.open("a") as journal:
            journal.write(line)
            journal.flush()
            os.fsync(journal.fileno())
