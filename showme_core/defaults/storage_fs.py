"""The ``filesystem`` storage backend: media bytes in the data directory, written durably.

A write goes to a temporary file in the target directory, is fsynced, renamed into place and the
directory fsynced: once ``put`` returns, the bytes survive a power cut, and a reader never sees a
half-written file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from showme_core.hookspecs import hookimpl
from showme_core.providers import StorageBackend, StoredObject

if TYPE_CHECKING:
    from showme_core.config import Settings

NAME = "filesystem"
CHUNK = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class FilesystemStorage:
    name = NAME

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) or ".." in key:
            raise ValueError(f"invalid storage key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> StoredObject:
        path = self._path(key)
        await asyncio.to_thread(_write_durably, path, data)
        return StoredObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise KeyError(key) from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@hookimpl
def showme_register_storage_backends(
    register: Callable[[StorageBackend], None], config: Settings
) -> None:
    root = config.settings_for(NAME).get("root") or config.data_dir / "media"
    register(FilesystemStorage(Path(root)))
