"""Pictures over HTTP: the caller's upload, the wall's lists, the bytes, and legal hold."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Message, Receive

from showme_core import devices, invites, media
from showme_core.app import ShowMe
from showme_core.errors import ClientGone, Gone, InvalidInput, ShowMeError
from showme_core.events import last_event_id
from showme_core.web.auth import require_principal, showme_of
from showme_core.web.caller import link_token
from showme_core.web.schemas import (
    LegalHold,
    PictureFields,
    incident_filter,
    paging,
    parse_body,
    validation_problem,
)

if TYPE_CHECKING:
    from showme_core.app import ShowMe

NO_STORE = {"Cache-Control": "no-store"}
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
# Room for the multipart boundaries, part headers and the small fields beside the picture.
FORM_OVERHEAD = 64 * 1024


class BadUpload(ShowMeError):
    status = 400
    code = "bad_upload"


class PictureTooLarge(ShowMeError):
    status = 413
    code = "picture_too_large"


def _too_large(limit: int) -> PictureTooLarge:
    megabytes = limit / (1024 * 1024)
    return PictureTooLarge(
        f"The picture is larger than {megabytes:.0f} MB. Choose a smaller one.", max_bytes=limit
    )


def _bounded(receive: Receive, limit: int) -> Receive:
    """Count the body as it arrives and stop it past ``limit``, before any parser sees more."""
    seen = 0

    async def bounded_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit - FORM_OVERHEAD)
        return message

    return bounded_receive


@contextlib.asynccontextmanager
async def _read_upload(
    request: Request, limit: int
) -> AsyncIterator[tuple[UploadFile, dict[str, str]]]:
    """The picture part (spooled: on disk past 1 MB, so waiting uploads hold no memory) and the
    small fields beside it; closed when the block ends."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise _too_large(limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadUpload("Send the picture as multipart/form-data, in a part named 'picture'.")
    bounded = Request(request.scope, receive=_bounded(request.receive, limit + FORM_OVERHEAD))
    try:
        form = await bounded.form(max_files=1, max_fields=8, max_part_size=1024)
    except HTTPException as exc:  # the multipart parser's refusals
        raise BadUpload(f"The upload could not be read: {exc.detail}") from exc
    try:
        picture = form.get("picture")
        if not isinstance(picture, UploadFile):
            raise BadUpload("The upload has no picture (a file part named 'picture').")
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if name == "picture":
                continue
            if not isinstance(value, str):
                raise BadUpload("Send exactly one file, in the part named 'picture'.")
            if value.strip():
                fields[name] = value.strip()
        size = picture.size if picture.size is not None else len(await picture.read())
        if size > limit:
            raise _too_large(limit)
        if not size:
            raise BadUpload("The picture is empty.")
        await picture.seek(0)
        yield picture, fields
    finally:
        await form.close()


async def upload_picture(request: Request) -> Response:
    """A caller sends a picture; answered only once it is durably stored (docs/media.md). Every
    refusal, whatever its reason, is counted in ``showme_media_rejected_total``."""
    showme = showme_of(request)
    try:
        return await _upload(request, showme)
    except ClientDisconnect:
        showme.metrics.media_rejected.labels(ClientGone.code).inc()
        raise ClientGone("The phone hung up during the upload.") from None
    except ShowMeError as exc:
        showme.metrics.media_rejected.labels(exc.code).inc()
        raise


async def _upload(request: Request, showme: ShowMe) -> Response:
    token = link_token(request)
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidInput("Idempotency-Key must be 8 to 128 letters, digits or _ . : -")
    # Refuse a dead link before reading megabytes, unless this may be the retry of a picture
    # that was stored (that retry is answered as the first time was, see media.ingest).
    async with showme.db.read() as db:
        invite = await invites.invite_by_token(db, token)
        if not invite.live and (key is None or await media.key_unused(db, invite.id, key)):
            invites.require_live(invite)
    await devices.require_device(showme, invite, request.headers.get(devices.DEVICE_HEADER))
    with showme.uploads.admit(invite.organisation_id, invite.id):
        async with _read_upload(request, showme.settings.max_upload_bytes) as (picture, raw):
            try:
                parsed = PictureFields.model_validate(raw)
            except ValidationError as exc:
                raise validation_problem(exc) from exc
            fields = media.CallerFields(
                lat=parsed.lat,
                lon=parsed.lon,
                accuracy_m=parsed.accuracy_m,
                captured_at=parsed.captured_at,
                kind=parsed.kind,
            )
            item, replayed = await media.ingest(showme, token, picture, fields, key)
    headers = {**NO_STORE, "Location": f"/api/v1/media/{item.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"media": item.to_json()}, status_code=201, headers=headers)


async def _listing(request: Request, invite_id: str | None) -> Response:
    principal = await require_principal(request, "media:read")
    limit, before = paging(request, default=100, maximum=500)
    incident_id = incident_filter(request) if invite_id is None else None
    async with showme_of(request).db.read() as db:
        # Read the feed position first: a feed resumed from it replays anything newer.
        last_id = await last_event_id(db, principal.organisation_id)
        if invite_id is not None:
            await invites.get_invite(db, principal.organisation_id, invite_id)
        found = await media.list_media(
            db,
            principal.organisation_id,
            invite_id=invite_id,
            incident_id=incident_id,
            limit=limit,
            before=before,
        )
    return JSONResponse(
        {"items": [item.to_json() for item in found], "last_event_id": last_id},
        headers=NO_STORE,
    )


async def invite_media(request: Request) -> Response:
    return await _listing(request, request.path_params["invite_id"])


async def organisation_media(request: Request) -> Response:
    return await _listing(request, None)


async def _bytes(request: Request, key: str) -> AsyncIterator[bytes]:
    """The stored bytes, or a 410 when they are gone (purged while the request was on its way)."""
    stream = showme_of(request).storage.open(key)
    try:
        first = await anext(stream)
    except (KeyError, StopAsyncIteration) as exc:
        raise Gone("This picture is no longer stored.", code="media_purged") from exc

    async def chained() -> AsyncIterator[bytes]:
        yield first
        async for chunk in stream:
            yield chunk

    return chained()


def _image_headers(etag: str, cache: str, **extra: str) -> dict[str, Any]:
    return {"Cache-Control": cache, "ETag": f'"{etag}"', **extra}


async def media_file(request: Request) -> Response:
    """The stored picture. Each viewer's first full-size view or download is audited."""
    principal = await require_principal(request, "media:read")
    showme = showme_of(request)
    async with showme.db.read() as db:
        item = await media.get_media(db, principal.organisation_id, request.path_params["media_id"])
    download = request.query_params.get("download") == "1"
    body = await _bytes(request, item.storage_key)
    await media.record_view(showme, principal, item, download)
    extra = {"Content-Length": str(item.size)}
    if download:
        extra["Content-Disposition"] = f'attachment; filename="showme-{item.id}.jpg"'
    return StreamingResponse(
        body,
        media_type=item.content_type,
        headers=_image_headers(item.sha256, "private, no-store", **extra),
    )


async def media_thumbnail(request: Request) -> Response:
    """A small JPEG for the wall; not a view."""
    principal = await require_principal(request, "media:read")
    showme = showme_of(request)
    async with showme.db.read() as db:
        item = await media.get_media(db, principal.organisation_id, request.path_params["media_id"])
    body = await _bytes(request, item.thumbnail_key)
    return StreamingResponse(
        body,
        media_type="image/jpeg",
        headers=_image_headers(f"{item.sha256[:32]}-thumbnail", "private, max-age=300"),
    )


async def legal_hold(request: Request) -> Response:
    principal = await require_principal(request, "media:hold")
    body = await parse_body(request, LegalHold)
    invite = await invites.set_legal_hold(
        showme_of(request), principal, request.path_params["invite_id"], body.hold, body.reason
    )
    async with showme_of(request).db.read() as db:
        sms_rows = await invites.latest_sms(db, [invite.id])
    return JSONResponse(invite.to_json(sms_rows.get(invite.id)), headers=NO_STORE)
