"""Media: pictures a caller sent, stored durably, listed, viewed under audit, and purged.

A media row exists only for bytes that are fully stored: the picture and its thumbnail are written
(temporary file, fsync, rename) before the row is inserted, in the same transaction as its event.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core import audit, invites
from showme_core.clock import as_utc, iso, utcnow
from showme_core.errors import Conflict, Gone, NotFound
from showme_core.ids import new_id
from showme_core.imaging import CleanPicture, PictureRejected, inspect_picture, process_picture
from showme_core.providers import PictureCandidate, PictureRefused
from showme_core.store.schema import invites as invites_table
from showme_core.store.schema import media, media_views, organisations

if TYPE_CHECKING:
    from showme_core.app import ShowMe
    from showme_core.auth import Principal

log = structlog.get_logger("showme.media")

KINDS = ("picture", "still", "snapshot")
CONTENT_TYPE = "image/jpeg"


@dataclass(frozen=True)
class CallerFields:
    """What the caller page sends beside the picture (docs/media.md)."""

    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    captured_at: datetime | None = None
    kind: str = "picture"


@dataclass(frozen=True)
class Media:
    id: str
    organisation_id: str
    invite_id: str
    incident_id: str | None
    kind: str
    created_at: datetime
    captured_at: datetime | None
    sha256: str
    size: int
    width: int
    height: int
    content_type: str
    storage_key: str
    thumbnail_key: str
    location: dict[str, Any] | None
    upload_sha256: str
    purged_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "invite_id": self.invite_id,
            "incident_id": self.incident_id,
            "kind": self.kind,
            "created_at": iso(self.created_at),
            "captured_at": iso(self.captured_at),
            "sha256": self.sha256,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "content_type": self.content_type,
            "location": self.location,
            "url": f"/api/v1/media/{self.id}",
            "thumbnail_url": f"/api/v1/media/{self.id}/thumbnail",
        }


def _media(row: Any) -> Media:
    return Media(
        id=row.id,
        organisation_id=row.organisation_id,
        invite_id=row.invite_id,
        incident_id=row.incident_id,
        kind=row.kind,
        created_at=as_utc(row.created_at),
        captured_at=as_utc(row.captured_at) if row.captured_at else None,
        sha256=row.sha256,
        size=row.size,
        width=row.width,
        height=row.height,
        content_type=row.content_type,
        storage_key=row.storage_key,
        thumbnail_key=row.thumbnail_key,
        location=row.location,
        upload_sha256=row.upload_sha256,
        purged_at=as_utc(row.purged_at) if row.purged_at else None,
    )


def _local_iso(value: datetime | None) -> str | None:
    """A time with the offset it was recorded in: the local time at the scene is evidence too."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def location_for(picture: CleanPicture, fields: CallerFields) -> dict[str, Any] | None:
    """The bytes' own EXIF position wins; else what the caller page read from the original."""
    exif = picture.exif
    if exif.lat is not None and exif.lon is not None:
        return {
            "lat": exif.lat,
            "lon": exif.lon,
            "accuracy_m": exif.accuracy_m,
            "source": "exif",
            "captured_at": _local_iso(exif.captured_at or fields.captured_at),
        }
    if fields.lat is not None and fields.lon is not None:
        return {
            "lat": fields.lat,
            "lon": fields.lon,
            "accuracy_m": fields.accuracy_m,
            "source": "caller_exif",
            "captured_at": _local_iso(fields.captured_at or exif.captured_at),
        }
    return None


async def _existing_for_key(conn: AsyncConnection, invite_id: str, key: str) -> Media | None:
    row = (
        await conn.execute(
            select(media).where(media.c.invite_id == invite_id, media.c.idempotency_key == key)
        )
    ).first()
    return _media(row) if row else None


async def key_unused(conn: AsyncConnection, invite_id: str, key: str) -> bool:
    return await _existing_for_key(conn, invite_id, key) is None


def _replay(existing: Media, upload_sha256: str) -> Media:
    if existing.upload_sha256 != upload_sha256:
        raise Conflict(
            "This upload key was already used for another picture.", code="idempotency_conflict"
        )
    if existing.purged_at is not None:
        raise Gone("This picture has been deleted.", code="media_purged")
    return existing


class PictureSource(Protocol):
    """An uploaded picture still on its way into memory (Starlette's ``UploadFile`` is one)."""

    async def read(self, size: int = -1) -> bytes: ...

    async def seek(self, offset: int) -> None: ...


HASH_CHUNK = 1024 * 1024
# Enough of the file for any header the allowed formats put first (JPEG's EXIF segment is at
# most 64 KB; phones put HEIF's 'meta' box before the pixels). A header further in is read whole.
HEADER_BYTES = 1024 * 1024


async def _hashed(source: PictureSource) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    await source.seek(0)
    while chunk := await source.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


# What decoding needs per pixel at its peak (docs/media.md, "Memory"): about 8 bytes for JPEG,
# PNG and HEIC; twice that for WebP, whose decoder keeps its canvas while Pillow copies it out.
# The budget counts pixels as a JPEG needs them.
_WEIGHT = {"WEBP": 2}


async def _header_pixels(showme: ShowMe, source: PictureSource, size: int) -> int | None:
    """What decoding will cost, in pixels as a JPEG needs them, from the header alone (nothing
    decoded); None when the header is not within the first bytes (the whole file is then
    inspected under the largest budget)."""
    await source.seek(0)
    head = await source.read(HEADER_BYTES)
    try:
        header = await showme.run_cpu(inspect_picture, head, showme.settings.max_image_pixels)
    except PictureRejected:
        if size <= len(head):
            raise  # that was the whole file
        return None
    return header.pixels * _WEIGHT.get(header.format, 1)


async def ingest(
    showme: ShowMe,
    token: str,
    source: PictureSource,
    fields: CallerFields,
    idempotency_key: str | None,
) -> tuple[Media, bool]:
    """Clean and store a caller's picture; returns it and whether this was a replayed retry.

    The bytes come into memory only once the decoding budget has room for the picture's pixels
    (:class:`showme_core.uploads.PixelBudget`), so memory follows what is being decoded.

    :raises ShowMeError: a refused link, a refused picture, or an idempotency conflict; nothing
        is stored then.
    """
    upload_sha256, size = await _hashed(source)
    async with showme.db.read() as db:
        invite = await invites.invite_by_token(db, token)
        # A retry of a stored picture answers as the first time did, even once the session has
        # ended: the caller's phone must learn that the dispatcher has it.
        if idempotency_key is not None:
            existing = await _existing_for_key(db, invite.id, idempotency_key)
            if existing is not None:
                return _replay(existing, upload_sha256), True
        invites.require_live(invite)

    limit = showme.settings.max_image_pixels
    pixels = await _header_pixels(showme, source, size) or limit * max(_WEIGHT.values())
    async with showme.decoding.hold(invite.organisation_id, pixels):
        started = time.perf_counter()
        await source.seek(0)
        data = await source.read()
        picture = await showme.run_cpu(process_picture, data, limit)
        del data
    location = location_for(picture, fields)
    try:
        await showme.plugins.check_picture(
            showme,
            invite,
            PictureCandidate(
                organisation_id=invite.organisation_id,
                invite_id=invite.id,
                kind=fields.kind,
                data=picture.data,
                sha256=hashlib.sha256(picture.data).hexdigest(),
                upload_sha256=upload_sha256,
                width=picture.width,
                height=picture.height,
                source_format=picture.source_format,
                location=location,
            ),
        )
    except PictureRefused as exc:
        raise PictureRejected(exc.reason, code="picture_refused") from exc
    media_id = new_id()
    prefix = f"{invite.organisation_id}/{invite.id}/{media_id}"
    written: list[str] = []
    try:
        stored = await showme.storage.put(f"{prefix}.jpg", picture.data)
        written.append(stored.key)
        thumb = await showme.storage.put(f"{prefix}.thumb.jpg", picture.thumbnail)
        written.append(thumb.key)
        captured = picture.exif.captured_at or fields.captured_at
        row = {
            "id": media_id,
            "organisation_id": invite.organisation_id,
            "invite_id": invite.id,
            "incident_id": invite.incident_id,
            "kind": fields.kind,
            "created_at": utcnow(),
            "captured_at": as_utc(captured) if captured else None,
            "sha256": stored.sha256,
            "size": stored.size,
            "width": picture.width,
            "height": picture.height,
            "content_type": CONTENT_TYPE,
            "storage_key": stored.key,
            "thumbnail_key": thumb.key,
            "location": location,
            "idempotency_key": idempotency_key,
            "upload_sha256": upload_sha256,
            "purged_at": None,
        }
        async with showme.transaction() as tx:
            # The session may have ended while the picture was decoded: check again, locked.
            await invites.invite_for_token(tx.conn, token, for_update=True)
            await tx.conn.execute(media.insert().values(**row))
            created = _media(
                (await tx.conn.execute(select(media).where(media.c.id == media_id))).one()
            )
            await tx.event(
                invite.organisation_id, "media.created", {"media": created.to_json()}, invite.id
            )
    except BaseException as exc:
        # Nothing is kept for an upload that did not end in a committed row.
        await _delete_quietly(showme, *written)
        if isinstance(exc, IntegrityError) and idempotency_key is not None:
            # A concurrent retry with the same key won the race: answer as it did.
            async with showme.db.read() as db:
                existing = await _existing_for_key(db, invite.id, idempotency_key)
            if existing is not None:
                return _replay(existing, upload_sha256), True
        raise
    showme.metrics.media_received.labels(fields.kind, picture.source_format).inc()
    showme.metrics.media_ingest.observe(time.perf_counter() - started)
    log.info(
        "media stored",
        media_id=media_id,
        invite_id=invite.id,
        organisation_id=invite.organisation_id,
        size=stored.size,
        format=picture.source_format,
    )
    showme.spawn(showme.plugins.picture_stored(showme, invite, created), "picture-stored")
    return created, False


async def _delete_quietly(showme: ShowMe, *keys: str) -> None:
    for key in keys:
        try:
            await asyncio.shield(showme.storage.delete(key))
        except Exception:  # best effort: without a row the bytes are unreachable
            log.warning("could not delete unreferenced media bytes", key=key, exc_info=True)


# ---- reading -----------------------------------------------------------------------------------


async def get_media(conn: AsyncConnection, organisation_id: str, media_id: str) -> Media:
    """One picture of the organisation; another organisation's answers 404 like a missing one."""
    row = (
        await conn.execute(
            select(media).where(media.c.id == media_id, media.c.organisation_id == organisation_id)
        )
    ).first()
    if row is None:
        raise NotFound("No such picture.", code="media_not_found")
    found = _media(row)
    if found.purged_at is not None:
        raise Gone("This picture was deleted when its retention period ended.", code="media_purged")
    return found


async def list_media(
    conn: AsyncConnection,
    organisation_id: str,
    *,
    invite_id: str | None = None,
    incident_id: str | None = None,
    limit: int = 100,
    before: datetime | None = None,
) -> list[Media]:
    """Pictures newest first (purged ones are gone from lists)."""
    query = select(media).where(
        media.c.organisation_id == organisation_id, media.c.purged_at.is_(None)
    )
    if invite_id is not None:
        query = query.where(media.c.invite_id == invite_id)
    if incident_id is not None:
        query = query.where(media.c.incident_id == incident_id)
    if before is not None:
        query = query.where(media.c.created_at < before)
    query = query.order_by(media.c.created_at.desc(), media.c.id.desc()).limit(limit)
    return [_media(row) for row in await conn.execute(query)]


async def record_view(showme: ShowMe, principal: Principal, item: Media, download: bool) -> None:
    """Audit a full-size view or download, once per viewer and picture."""
    dialect = postgresql if showme.db.url.get_backend_name() == "postgresql" else sqlite
    async with showme.transaction() as tx:
        inserted = await tx.conn.execute(
            dialect.insert(media_views)
            .values(media_id=item.id, actor=principal.actor, created_at=utcnow())
            .on_conflict_do_nothing()
        )
        if inserted.rowcount != 1:
            return  # seen before (or by a request racing this one): audited once
        await audit.record(
            tx.conn,
            organisation_id=item.organisation_id,
            actor=principal.actor,
            action="media.download" if download else "media.view",
            subject=item.id,
            invite_id=item.invite_id,
            sha256=item.sha256,
        )


# ---- retention ---------------------------------------------------------------------------------


async def purge_expired(
    showme: ShowMe, now: datetime | None = None, organisation_id: str | None = None
) -> int:
    """Purge every picture past its organisation's retention period whose invite is neither live
    nor on legal hold (of one organisation, or of all). Returns how many were purged. Safe to run
    on several instances at once."""
    now = now or utcnow()
    purged = 0
    query = select(organisations.c.id, organisations.c.retention_seconds)
    if organisation_id is not None:
        query = query.where(organisations.c.id == organisation_id)
    async with showme.db.read() as db:
        orgs = (await db.execute(query)).all()
    for org_id, retention_seconds in orgs:
        cutoff = now - timedelta(seconds=retention_seconds)
        async with showme.db.read() as db:
            candidates = (
                await db.execute(
                    select(media.c.id, media.c.invite_id)
                    .join(invites_table, invites_table.c.id == media.c.invite_id)
                    .where(
                        media.c.organisation_id == org_id,
                        media.c.purged_at.is_(None),
                        media.c.created_at <= cutoff,
                        invites_table.c.legal_hold.is_(False),
                        or_(
                            invites_table.c.ended_at.is_not(None),
                            invites_table.c.expires_at <= now,
                        ),
                    )
                    .order_by(media.c.created_at)
                )
            ).all()
        for media_id, invite_id in candidates:
            if await _purge_one(showme, org_id, media_id, invite_id, now):
                purged += 1
    await delete_purged_bytes(showme)
    return purged


async def _purge_one(
    showme: ShowMe, org_id: str, media_id: str, invite_id: str, now: datetime
) -> bool:
    """Mark one picture purged, after checking again under the invite's row lock that no hold was
    placed and the invite was not extended meanwhile. The bytes go right after the commit."""
    async with showme.transaction() as tx:
        invite = await invites.get_invite(tx.conn, org_id, invite_id, for_update=True)
        if invite.legal_hold or invite.status(now) in (
            invites.InviteStatus.PENDING,
            invites.InviteStatus.OPENED,
        ):
            return False
        result = await tx.conn.execute(
            update(media)
            .where(media.c.id == media_id, media.c.purged_at.is_(None))
            .values(purged_at=now)
            .returning(media.c.sha256)
        )
        sha256 = result.scalar_one_or_none()
        if sha256 is None:
            return False  # another instance purged it first
        await audit.record(
            tx.conn,
            organisation_id=org_id,
            actor="system:retention",
            action="media.purge",
            subject=media_id,
            invite_id=invite_id,
            sha256=sha256,
        )
        await tx.event(
            org_id,
            "media.purged",
            {"media": {"id": media_id, "invite_id": invite_id}},
            invite_id,
        )
    showme.metrics.media_purged.inc()
    return True


async def delete_purged_bytes(showme: ShowMe) -> None:
    """Delete the bytes of purged pictures, then forget their keys. Rerunning after a crash between
    the two steps deletes again, which is harmless."""
    async with showme.db.read() as db:
        rows = (
            await db.execute(
                select(media.c.id, media.c.storage_key, media.c.thumbnail_key).where(
                    and_(media.c.purged_at.is_not(None), media.c.storage_key != "")
                )
            )
        ).all()
    for media_id, key, thumb_key in rows:
        await showme.storage.delete(key)
        await showme.storage.delete(thumb_key)
        async with showme.db.transaction() as conn:
            await conn.execute(
                update(media).where(media.c.id == media_id).values(storage_key="", thumbnail_key="")
            )


ORPHAN_BATCH = 500
# The keys ingest writes (<organisation>/<invite>/<media>.jpg and .thumb.jpg) and what an
# interrupted write leaves beside them. Nothing else a backend lists is ever the sweep's to touch,
# even if an operator points storage at a folder that holds other files.
_MEDIA_KEY = re.compile(
    r"^[0-9a-f]{32}/[0-9a-f]{32}/(?:(?P<media>[0-9a-f]{32})\.(?:thumb\.)?jpg|\.incoming-[\w-]+)$"
)


async def remove_orphans(showme: ShowMe, now: datetime | None = None) -> int:
    """Delete stored bytes that no committed row points at and that are older than
    ``orphan_grace_seconds``: what a crash left between writing a picture and committing its row
    (or in the middle of a write). Without this they would stay for ever, outside retention.
    Returns how many keys were removed. Safe beside uploads in progress: their files are younger
    than the grace, which is far longer than the moment between a write and its commit. A backend
    that cannot list what it holds is skipped (``StorageBackend`` in ``providers.py``)."""
    listing = getattr(showme.storage, "list", None)
    if listing is None:
        return 0
    cutoff = (now or utcnow()) - timedelta(seconds=showme.settings.orphan_grace_seconds)
    removed = 0
    batch: dict[str, str | None] = {}  # key -> the media id it belongs to (None: a half write)
    async for stored in listing():
        found = _MEDIA_KEY.match(stored.key)
        if found is None or stored.modified_at > cutoff:
            continue
        batch[stored.key] = found.group("media")
        if len(batch) >= ORPHAN_BATCH:
            removed += await _remove_unreferenced(showme, batch)
            batch = {}
    if batch:
        removed += await _remove_unreferenced(showme, batch)
    if removed:
        showme.metrics.media_orphans_removed.inc(removed)
        log.warning("removed stored bytes without a row", count=removed)
    return removed


async def _remove_unreferenced(showme: ShowMe, keys: dict[str, str | None]) -> int:
    """Delete the keys no row references, looking rows up by their primary key."""
    ids = {media_id for media_id in keys.values() if media_id is not None}
    async with showme.db.read() as db:
        referenced = {
            key
            for row in await db.execute(
                select(media.c.storage_key, media.c.thumbnail_key).where(media.c.id.in_(ids))
            )
            for key in row
        }
    orphans = [key for key in keys if key not in referenced]
    for key in orphans:
        await showme.storage.delete(key)
    return len(orphans)
