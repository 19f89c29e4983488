"""The ``filesystem`` storage backend: media bytes in the data directory, written durably.

A write goes to a temporary file in the target directory, is fsynced, renamed into place and the
directory fsynced: once ``put`` returns, the bytes survive a power cut, and a reader never sees a
half-written file. A crash mid-write leaves a ``.incoming-*`` file, which ``list`` reports and
``delete`` removes like any key. Deleting the last file of a folder removes the folder (and its
parent, the organisation's, when that empties too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from showme_core.hookspecs import hookimpl
from showme_core.providers import StorageBackend, StoredKey, StoredObject

if TYPE_CHECKING:
    from showme_core.config import Settings

NAME = "filesystem"
CHUNK = 256 * 1024
# Folders and names as the core makes them; a name may also be a temporary file of this backend.
_KEY = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*"
    r"(/\.incoming-[A-Za-z0-9_-]+)?$"
)
TEMPORARY = ".incoming-"


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
        await asyncio.to_thread(_unlink_and_prune, path, self.root)

    async def list(self, prefix: str = "") -> AsyncIterator[StoredKey]:
        found = await asyncio.to_thread(_walk, self.root, prefix)
        for item in found:
            yield item

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)


def _unlink_and_prune(path: Path, root: Path) -> None:
    path.unlink(missing_ok=True)
    folder = path.parent
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()  # only when empty: a purged invite leaves no folder behind
        except OSError:
            return
        folder = folder.parent


def _walk(root: Path, prefix: str) -> list[StoredKey]:
    found: list[StoredKey] = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            key = path.relative_to(root).as_posix()
            if not key.startswith(prefix) or not _KEY.match(key):
                continue
            with contextlib.suppress(FileNotFoundError):  # deleted while we looked
                modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                found.append(StoredKey(key, modified))
    return found


def _write_durably(path: Path, data: bytes) -> None:
    try:
        fd, tmp = _temporary(path)
    except FileNotFoundError:
        # The folder was pruned (its last file deleted) between mkdir and the write: again.
        fd, tmp = _temporary(path)
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


def _temporary(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY)
