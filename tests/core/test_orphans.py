"""Every stored byte is reachable by retention: bytes a crash left without a committed row are
removed after the grace period, and a purge leaves no empty folder behind."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from showme_core import media
from showme_core.clock import utcnow
from showme_core.config import Settings
from showme_core.defaults.storage_fs import FilesystemStorage
from showme_core.ids import new_id
from showme_core.testing import Tenant
from tests import pictures


@pytest.fixture
def showme_settings(showme_settings: Settings) -> Settings:
    return showme_settings.model_copy(update={"orphan_grace_seconds": 60.0})


async def stored_picture(tenant: Tenant) -> dict[str, Any]:
    created = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
    )
    token = created.json()["link"].split("#", 1)[1]
    answer = await tenant.client.post(
        "/api/v1/caller/media",
        headers={"X-ShowMe-Link": token},
        files={"picture": ("p.jpg", pictures.jpeg(pictures.scene(80, 60)), "image/jpeg")},
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["media"])


def age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


async def test_crash_leftovers_are_removed_after_the_grace(
    tenant: Tenant, showme: Any, showme_settings: Settings
) -> None:
    kept = await stored_picture(tenant)
    root = showme_settings.data_dir / "media"
    invite_dir = root / tenant.org.id / kept["invite_id"]
    # What a kill -9 leaves: a picture and thumbnail written, no row; a write cut in the middle.
    crashed = new_id()
    leftovers = [invite_dir / f"{crashed}.jpg", invite_dir / f"{crashed}.thumb.jpg"]
    for path in leftovers:
        path.write_bytes(pictures.jpeg(pictures.scene(8, 8)))
    half = invite_dir / ".incoming-abc123_x"
    half.write_bytes(b"\xff\xd8 half a picture")
    young = invite_dir / f"{new_id()}.jpg"  # an upload that has not committed yet
    young.write_bytes(b"\xff\xd8 still arriving")
    # Not the sweep's: files that are not media keys, even old and under the storage root.
    strangers = [root / "showme.db", root / "notes.txt", invite_dir / "other.jpg"]
    for path in strangers:
        path.write_bytes(b"not a picture of ours")
    for path in [*leftovers, half, *strangers]:
        age(path, 3600)
    for path in invite_dir.iterdir():
        if path.name.startswith(kept["id"]):
            age(path, 3600)  # old, but its row exists

    removed = await media.remove_orphans(showme)

    assert removed == 3
    left = files(root)
    assert not any(crashed in name or ".incoming-" in name for name in left)
    assert any(name.endswith(f"{kept['id']}.jpg") for name in left)
    assert any(name.endswith(young.name) for name in left)
    assert all(path.exists() for path in strangers)
    answer = await tenant.client.get(f"/api/v1/media/{kept['id']}")
    assert answer.status_code == 200
    assert "showme_media_orphans_removed_total 3.0" in showme.metrics.render().decode()
    assert await media.remove_orphans(showme) == 0


async def test_a_purge_leaves_no_empty_folder(
    tenant: Tenant, showme: Any, showme_settings: Settings
) -> None:
    item = await stored_picture(tenant)
    ended = await tenant.cad.post(f"/api/v1/invites/{item['invite_id']}/end")
    assert ended.status_code == 200
    later = utcnow() + timedelta(days=30)
    assert await media.purge_expired(showme, now=later, organisation_id=tenant.org.id) == 1
    root = showme_settings.data_dir / "media"
    assert not (root / tenant.org.id / item["invite_id"]).exists()
    assert not (root / tenant.org.id).exists()
    assert root.exists()


async def test_a_backend_that_cannot_list_is_left_alone(showme: Any) -> None:
    class Plain:
        name = "plain"

    showme.storage = Plain()
    assert await media.remove_orphans(showme) == 0


async def test_the_filesystem_lists_what_it_holds(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "media")
    await storage.put("org/inv/a.jpg", b"a")
    await storage.put("org/inv/b.jpg", b"b")
    await storage.put("other/inv/c.jpg", b"c")
    (tmp_path / "media" / "org" / "inv" / ".incoming-zz9").write_bytes(b"half")
    listed = {item.key async for item in storage.list()}
    assert listed == {"org/inv/a.jpg", "org/inv/b.jpg", "other/inv/c.jpg", "org/inv/.incoming-zz9"}
    assert {item.key async for item in storage.list("org/")} == listed - {"other/inv/c.jpg"}
    for key in ("org/inv/a.jpg", "org/inv/b.jpg", "org/inv/.incoming-zz9"):
        await storage.delete(key)
    assert not (tmp_path / "media" / "org").exists()
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.delete("org/../../etc/passwd")
    # A write into a folder that was just pruned still lands.
    await storage.put("org/inv/d.jpg", b"d")
    assert (tmp_path / "media" / "org" / "inv" / "d.jpg").read_bytes() == b"d"
