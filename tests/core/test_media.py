"""The picture loop over HTTP: a caller uploads, the organisation lists, views under audit, and
retention purges; refusals store nothing; retries are idempotent."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from showme_core import media
from showme_core.accounts import Role, create_api_key, create_user
from showme_core.clock import utcnow
from showme_core.config import Settings
from showme_core.store.schema import audit_records
from showme_core.store.schema import media as media_table
from showme_core.testing import TEST_PASSWORD, Tenant, client_for, read_feed_backlog, unique
from tests import pictures

MAX_BYTES = 1_000_000


@pytest.fixture
def showme_settings(showme_settings: Settings) -> Settings:
    return showme_settings.model_copy(update={"max_upload_bytes": MAX_BYTES})


async def new_invite(tenant: Tenant) -> tuple[str, str]:
    """An invite and its link token, as the caller's phone would have it."""
    answer = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.json()["link"].split("#", 1)[1]


async def upload(
    client: httpx.AsyncClient,
    token: str,
    data: bytes,
    *,
    key: str | None = None,
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"X-ShowMe-Link": token}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post(
        "/api/v1/caller/media",
        headers=headers,
        files={"picture": ("picture.jpg", data, "image/jpeg")},
        data=fields or {},
    )


def stored_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def media_rows(showme: Any, tenant: Tenant) -> int:
    """The organisation's media rows (the database is shared by the session's tests)."""
    query = select(func.count()).where(media_table.c.organisation_id == tenant.org.id)
    async with showme.db.read() as db:
        return int((await db.execute(query)).scalar_one())


async def audits(showme: Any, tenant: Tenant, action: str) -> list[Any]:
    query = (
        select(audit_records)
        .where(audit_records.c.action == action, audit_records.c.organisation_id == tenant.org.id)
        .order_by(audit_records.c.id)
    )
    async with showme.db.read() as db:
        return list((await db.execute(query)).all())


async def test_a_picture_goes_from_caller_to_the_organisation(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    invite_id, token = await new_invite(tenant)
    original = pictures.jpeg(
        pictures.scene(1200, 900),
        pictures.gps_exif(
            -33.8688, 151.2093, accuracy_m=4, taken="2026:11:24 20:01:02", offset="+11:00"
        ),
        comment=pictures.COMMENT,
    )
    answer = await upload(showme_client, token, original, key="first-picture-key")
    assert answer.status_code == 201, answer.text
    item = answer.json()["media"]
    assert answer.headers["location"] == f"/api/v1/media/{item['id']}"
    assert item["invite_id"] == invite_id
    assert (item["width"], item["height"], item["kind"]) == (1200, 900, "picture")
    assert item["location"] == {
        "lat": pytest.approx(-33.8688),
        "lon": pytest.approx(151.2093),
        "accuracy_m": 4.0,
        "source": "exif",
        "captured_at": "2026-11-24T20:01:02+11:00",
    }
    assert item["captured_at"] == "2026-11-24T09:01:02Z"

    # The organisation sees it: per invite, across invites, on the feed.
    for path in (f"/api/v1/invites/{invite_id}/media", "/api/v1/media"):
        listed = (await tenant.client.get(path)).json()
        assert [m["id"] for m in listed["items"]] == [item["id"]]
        assert listed["last_event_id"] >= 1
    cookie = {"cookie": "; ".join(f"{k}={v}" for k, v in tenant.client.cookies.items())}
    events = await read_feed_backlog(tenant.client._transport.app, cookie)  # type: ignore[attr-defined]
    created = [e for e in events if e.get("type") == "media.created"]
    assert created[-1]["data"]["media"] == item

    # The bytes are the hashed bytes, and carry nothing of the original's metadata.
    full = await tenant.client.get(item["url"])
    assert full.status_code == 200
    assert full.headers["content-type"] == "image/jpeg"
    assert full.headers["cache-control"] == "private, no-store"
    assert hashlib.sha256(full.content).hexdigest() == item["sha256"]
    assert len(full.content) == item["size"]
    assert pictures.COMMENT not in full.content and b"Exif" not in full.content
    assert Image.open(io.BytesIO(full.content)).size == (1200, 900)
    thumb = await tenant.cad.get(item["thumbnail_url"])
    assert thumb.status_code == 200
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 320

    download = await tenant.client.get(item["url"] + "?download=1")
    assert download.headers["content-disposition"].startswith("attachment;")


async def test_the_pages_fields_give_the_location_when_the_bytes_have_none(
    showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    fields = {
        "lat": "50.8503",
        "lon": "4.3517",
        "accuracy_m": "8",
        "captured_at": "2026-11-24T07:59:41+01:00",
    }
    answer = await upload(showme_client, token, pictures.jpeg(), fields=fields)
    assert answer.status_code == 201, answer.text
    item = answer.json()["media"]
    assert item["location"] == {
        "lat": 50.8503,
        "lon": 4.3517,
        "accuracy_m": 8.0,
        "source": "caller_exif",
        "captured_at": "2026-11-24T07:59:41+01:00",
    }
    assert item["captured_at"] == "2026-11-24T06:59:41Z"
    plain = await upload(showme_client, token, pictures.png())
    assert plain.json()["media"]["location"] is None


async def test_a_retry_with_the_same_key_is_the_same_picture(
    showme: Any, showme_settings: Settings, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    data = pictures.jpeg()
    first = await upload(showme_client, token, data, key="retry-key-0001")
    again = await upload(showme_client, token, data, key="retry-key-0001")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    files = stored_files(showme_settings)
    assert len(files) == 2, files  # the picture and its thumbnail, once
    assert await media_rows(showme, tenant) == 1

    other = await upload(showme_client, token, pictures.png(), key="retry-key-0001")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert stored_files(showme_settings) == files
    assert await media_rows(showme, tenant) == 1

    # Two copies of one retry racing each other still make one picture.
    racing = pictures.webp()
    answers = await asyncio.gather(
        *(upload(showme_client, token, racing, key="racing-key-0002") for _ in range(2))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["media"]["id"] for a in answers}) == 1
    assert await media_rows(showme, tenant) == 2
    assert len(stored_files(showme_settings)) == 4


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (pictures.png_bomb(), 422, "picture_too_many_pixels"),
        (pictures.jpeg()[:-3000], 422, "picture_unreadable"),
        (pictures.jpeg() + pictures.TRAILER, 422, "picture_polyglot"),
        (b"just some text, not a picture at all", 415, "picture_format_not_allowed"),
        (pictures.gif(), 415, "picture_format_not_allowed"),
        (b"\xff\xd8\xff" + b"\x00" * (MAX_BYTES + 10), 413, "picture_too_large"),
    ],
    ids=["bomb", "truncated", "polyglot", "not-an-image", "gif", "oversize"],
)
async def test_refused_uploads_say_why_and_store_nothing(
    showme: Any,
    showme_settings: Settings,
    showme_client: httpx.AsyncClient,
    tenant: Tenant,
    data: bytes,
    status: int,
    code: str,
) -> None:
    invite_id, token = await new_invite(tenant)
    answer = await upload(showme_client, token, data, key=f"refused-{code}")
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert len(error["message"]) > 20  # words the caller page can show
    assert stored_files(showme_settings) == []
    assert await media_rows(showme, tenant) == 0
    assert (await tenant.client.get(f"/api/v1/invites/{invite_id}/media")).json()["items"] == []
    # The refusal does not burn the key: the right picture can still be sent with it.
    assert (
        await upload(showme_client, token, pictures.jpeg(), key=f"refused-{code}")
    ).status_code == 201


async def test_oversize_is_refused_from_the_declared_length(
    showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    answer = await showme_client.post(
        "/api/v1/caller/media",
        headers={
            "X-ShowMe-Link": token,
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(50 * MAX_BYTES),
        },
        content=b"--x--",
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["max_bytes"] == MAX_BYTES


@pytest.mark.parametrize(
    ("fields", "files", "headers", "status", "code"),
    [
        ({"lat": "50.1"}, None, {}, 422, "invalid_input"),
        ({"lat": "123", "lon": "4"}, None, {}, 422, "invalid_input"),
        ({"captured_at": "2026-11-24T07:59:41"}, None, {}, 422, "invalid_input"),
        ({"kind": "video"}, None, {}, 422, "invalid_input"),
        ({"unexpected": "x"}, None, {}, 422, "invalid_input"),
        ({}, {"other": ("p.jpg", b"x", "image/jpeg")}, {}, 400, "bad_upload"),
        ({}, "two", {}, 400, "bad_upload"),
        ({}, None, {"Idempotency-Key": "short"}, 422, "invalid_input"),
        ({}, None, {"Idempotency-Key": "has spaces in it"}, 422, "invalid_input"),
    ],
    ids=[
        "lat-alone",
        "lat-out-of-range",
        "naive-time",
        "bad-kind",
        "extra-field",
        "no-picture-part",
        "two-files",
        "short-key",
        "bad-key",
    ],
)
async def test_malformed_uploads_are_refused(
    showme: Any,
    showme_client: httpx.AsyncClient,
    tenant: Tenant,
    fields: dict[str, str],
    files: Any,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    _invite_id, token = await new_invite(tenant)
    picture = ("p.jpg", pictures.jpeg(), "image/jpeg")
    if files == "two":
        files = [("picture", picture), ("picture", picture)]
    elif files is None:
        files = {"picture": picture}
    answer = await showme_client.post(
        "/api/v1/caller/media",
        headers={"X-ShowMe-Link": token, **headers},
        files=files,
        data=fields,
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert await media_rows(showme, tenant) == 0


async def test_not_multipart_and_dead_links_are_refused(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    invite_id, token = await new_invite(tenant)
    raw = await showme_client.post(
        "/api/v1/caller/media",
        headers={"X-ShowMe-Link": token, "Content-Type": "image/jpeg"},
        content=pictures.jpeg(),
    )
    assert (raw.status_code, raw.json()["error"]["code"]) == (400, "bad_upload")
    forged = await upload(showme_client, "A" * 24, pictures.jpeg())
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "invalid_link")
    missing = await showme_client.post(
        "/api/v1/caller/media", files={"picture": ("p.jpg", pictures.jpeg(), "image/jpeg")}
    )
    assert missing.status_code == 401
    await tenant.client.post(f"/api/v1/invites/{invite_id}/end")
    ended = await upload(showme_client, token, pictures.jpeg())
    assert (ended.status_code, ended.json()["error"]["code"]) == (410, "link_ended")
    assert await media_rows(showme, tenant) == 0


async def test_full_size_views_are_audited_once_per_viewer(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    item = (await upload(showme_client, token, pictures.jpeg())).json()["media"]
    for _ in range(3):
        assert (await tenant.client.get(item["thumbnail_url"])).status_code == 200
    assert await audits(showme, tenant, "media.view") == []
    for _ in range(3):
        assert (await tenant.client.get(item["url"])).status_code == 200
    views = await audits(showme, tenant, "media.view")
    assert len(views) == 1
    assert views[0].subject == item["id"]
    assert views[0].actor.startswith("user:")
    assert views[0].details["sha256"] == item["sha256"]
    assert (await tenant.cad.get(item["url"] + "?download=1")).status_code == 200
    downloads = await audits(showme, tenant, "media.download")
    assert [d.actor[:8] for d in downloads] == ["api_key:"]


async def test_media_read_needs_its_scope(
    showme: Any, tenant: Tenant, showme_client: httpx.AsyncClient
) -> None:
    _invite_id, token = await new_invite(tenant)
    item = (await upload(showme_client, token, pictures.jpeg())).json()["media"]
    async with showme.transaction() as tx:
        _key, secret = await create_api_key(
            tx.conn, organisation_id=tenant.org.id, name="invites only", scopes=["invites:read"]
        )
    app = tenant.client._transport.app  # type: ignore[attr-defined]
    async with client_for(app, headers={"Authorization": f"Bearer {secret}"}) as reader:
        for path in ("/api/v1/media", item["url"], item["thumbnail_url"]):
            answer = await reader.get(path)
            assert (answer.status_code, answer.json()["error"]["code"]) == (403, "missing_scope")


async def admin_client(showme: Any, tenant: Tenant) -> httpx.AsyncClient:
    email = f"{unique('admin')}@example.test"
    async with showme.transaction() as tx:
        await create_user(
            tx.conn,
            showme.passwords,
            organisation_id=tenant.org.id,
            email=email,
            name="Admin",
            role=Role.ADMIN,
            password=TEST_PASSWORD,
        )
    client = client_for(tenant.client._transport.app)  # type: ignore[attr-defined]
    signed_in = await client.post(
        "/api/v1/session", json={"email": email, "password": TEST_PASSWORD}
    )
    assert signed_in.status_code == 200
    return client


async def test_retention_purges_only_what_it_may(
    showme: Any,
    showme_settings: Settings,
    showme_client: httpx.AsyncClient,
    make_tenant: Any,
) -> None:
    tenant = await make_tenant(retention_seconds=3600)
    ended_id, ended_token = await new_invite(tenant)
    _live_id, live_token = await new_invite(tenant)
    held_id, held_token = await new_invite(tenant)
    gone = (await upload(showme_client, ended_token, pictures.jpeg())).json()["media"]
    live = (await upload(showme_client, live_token, pictures.jpeg())).json()["media"]
    held = (await upload(showme_client, held_token, pictures.jpeg())).json()["media"]
    # Another organisation with a longer retention keeps its picture at the same moment.
    patient = await make_tenant(retention_seconds=10 * 3600)
    patient_id, patient_token = await new_invite(patient)
    kept = (await upload(showme_client, patient_token, pictures.jpeg())).json()["media"]
    for client, invite_id in (
        (tenant.client, ended_id),
        (tenant.client, held_id),
        (patient.client, patient_id),
    ):
        assert (await client.post(f"/api/v1/invites/{invite_id}/end")).status_code == 200

    async with contextlib.aclosing(await admin_client(showme, tenant)) as admin:
        hold = await admin.post(
            f"/api/v1/invites/{held_id}/legal-hold",
            json={"hold": True, "reason": "court order 12/345"},
        )
        assert hold.status_code == 200, hold.text
        assert hold.json()["legal_hold"] is True

        # Within retention nothing goes.
        assert await media.purge_expired(showme, organisation_id=tenant.org.id) == 0
        # Past it (the live invite's own lifetime of 6 h is not over yet at +2 h): one purge.
        later = utcnow() + timedelta(hours=2)
        assert await media.purge_expired(showme, later, tenant.org.id) == 1
        assert (await tenant.client.get(gone["url"])).json()["error"]["code"] == "media_purged"
        listed = (await tenant.client.get("/api/v1/media")).json()["items"]
        assert {m["id"] for m in listed} == {live["id"], held["id"]}
        assert (await patient.client.get(kept["url"])).status_code == 200
        assert (await tenant.client.get(live["url"])).status_code == 200
        assert (await tenant.client.get(held["url"])).status_code == 200
        purges = await audits(showme, tenant, "media.purge")
        assert [(p.subject, p.details["sha256"]) for p in purges] == [(gone["id"], gone["sha256"])]
        names = {p.name for p in stored_files(showme_settings)}
        assert f"{gone['id']}.jpg" not in names and f"{gone['id']}.thumb.jpg" not in names
        assert f"{held['id']}.jpg" in names

        # The hold lifted, the next sweep takes the held picture too; the live one stays.
        lifted = await admin.post(f"/api/v1/invites/{held_id}/legal-hold", json={"hold": False})
        assert lifted.json()["legal_hold"] is False
        assert await media.purge_expired(showme, later, tenant.org.id) == 1
        assert (await tenant.client.get(live["url"])).status_code == 200
        # Once the live invite has expired too, its picture follows; twice purging changes nothing.
        much_later = utcnow() + timedelta(hours=8)
        assert await media.purge_expired(showme, much_later, tenant.org.id) == 1
        assert await media.purge_expired(showme, much_later, tenant.org.id) == 0
        assert (await patient.client.get(kept["url"])).status_code == 200
        eleven_hours = utcnow() + timedelta(hours=11)
        assert await media.purge_expired(showme, eleven_hours, patient.org.id) == 1

    cookie = {"cookie": "; ".join(f"{k}={v}" for k, v in tenant.client.cookies.items())}
    events = await read_feed_backlog(tenant.client._transport.app, cookie)  # type: ignore[attr-defined]
    kinds = [e.get("type") for e in events]
    assert kinds.count("media.purged") == 3 and kinds.count("invite.legal_hold") == 2
    assert len(await audits(showme, tenant, "invite.legal_hold")) == 1
    assert len(await audits(showme, tenant, "invite.legal_hold_lifted")) == 1
    assert [a.details["reason"] for a in await audits(showme, tenant, "invite.legal_hold")] == [
        "court order 12/345"
    ]


async def test_only_admins_and_entitled_keys_set_a_hold(showme: Any, tenant: Tenant) -> None:
    invite_id, _token = await new_invite(tenant)
    refused = await tenant.client.post(
        f"/api/v1/invites/{invite_id}/legal-hold", json={"hold": True}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "admin_only")
    async with showme.transaction() as tx:
        _key, secret = await create_api_key(
            tx.conn, organisation_id=tenant.org.id, name="records", scopes=["media:hold"]
        )
    app = tenant.client._transport.app  # type: ignore[attr-defined]
    async with client_for(app, headers={"Authorization": f"Bearer {secret}"}) as records:
        answer = await records.post(f"/api/v1/invites/{invite_id}/legal-hold", json={"hold": True})
        assert answer.status_code == 200 and answer.json()["legal_hold"] is True
    invite = (await tenant.client.get(f"/api/v1/invites/{invite_id}")).json()
    assert invite["legal_hold"] is True


async def test_a_retry_after_the_session_ended_still_learns_its_picture_arrived(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    invite_id, token = await new_invite(tenant)
    data = pictures.jpeg()
    first = await upload(showme_client, token, data, key="lost-answer-key")
    assert first.status_code == 201
    await tenant.client.post(f"/api/v1/invites/{invite_id}/end")
    retry = await upload(showme_client, token, data, key="lost-answer-key")
    assert retry.status_code == 201 and retry.json() == first.json()
    # But nothing new is taken once the session has ended, with or without a key.
    for key in ("a-new-picture-key", None):
        refused = await upload(showme_client, token, data, key=key)
        assert (refused.status_code, refused.json()["error"]["code"]) == (410, "link_ended")
    assert await media_rows(showme, tenant) == 1


async def test_racing_first_views_are_audited_once(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    item = (await upload(showme_client, token, pictures.jpeg())).json()["media"]
    answers = await asyncio.gather(*(tenant.client.get(item["url"]) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert len(await audits(showme, tenant, "media.view")) == 1


async def test_implausible_capture_times_are_refused(
    showme: Any, showme_settings: Settings, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    for value in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "1850-01-01T00:00Z"):
        answer = await upload(showme_client, token, pictures.jpeg(), fields={"captured_at": value})
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, "invalid_input")
    assert stored_files(showme_settings) == [] and await media_rows(showme, tenant) == 0


async def test_a_streamed_body_is_cut_off_past_the_limit(
    showme: Any, showme_settings: Settings, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield b"--x\r\nContent-Disposition: form-data; name=picture; filename=p.jpg\r\n\r\n"
        for _ in range(100):  # 100 x 64 KB: far past the limit, without a Content-Length
            sent.append(1)
            yield b"\xff" * 65536

    answer = await showme_client.post(
        "/api/v1/caller/media",
        headers={"X-ShowMe-Link": token, "Content-Type": "multipart/form-data; boundary=x"},
        content=endless(),
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (413, "picture_too_large")
    assert len(sent) < 100 * 0.3  # refused while it arrived, not after
    assert stored_files(showme_settings) == [] and await media_rows(showme, tenant) == 0


async def test_one_phone_cannot_flood_the_instance_with_parallel_uploads(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    data = pictures.jpeg()
    release = asyncio.Event()
    entered: list[int] = []

    async def slow_body() -> AsyncIterator[bytes]:
        head, tail = _multipart(data)
        yield head
        entered.append(1)
        await release.wait()
        yield tail

    headers = {
        "X-ShowMe-Link": token,
        "Content-Type": "multipart/form-data; boundary=xyzzy",
    }
    slow = [
        asyncio.create_task(
            showme_client.post("/api/v1/caller/media", headers=headers, content=slow_body())
        )
        for _ in range(showme.settings.max_uploads_per_invite)
    ]
    for _ in range(500):
        if len(entered) == len(slow):
            break
        await asyncio.sleep(0.01)
    refused = await upload(showme_client, token, data)
    assert (refused.status_code, refused.json()["error"]["code"]) == (429, "too_many_uploads")
    assert refused.headers["retry-after"] == "2"
    release.set()
    assert [(await task).status_code for task in slow] == [201] * len(slow)
    assert (await upload(showme_client, token, data)).status_code == 201


def _multipart(data: bytes) -> tuple[bytes, bytes]:
    head = (
        b'--xyzzy\r\nContent-Disposition: form-data; name="picture"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + data[:1000]
    )
    return head, data[1000:] + b"\r\n--xyzzy--\r\n"


async def test_paging_reads_any_offset_as_the_same_instant(
    showme_client: httpx.AsyncClient, tenant: Tenant
) -> None:
    _invite_id, token = await new_invite(tenant)
    item = (await upload(showme_client, token, pictures.jpeg())).json()["media"]
    created = datetime.fromisoformat(item["created_at"].replace("Z", "+00:00"))
    later = (created + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=-5)))
    earlier = (created - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=9)))
    for before, expected in ((later, [item["id"]]), (earlier, [])):
        answer = await tenant.client.get("/api/v1/media", params={"before": before.isoformat()})
        assert [m["id"] for m in answer.json()["items"]] == expected, before


async def test_every_refusal_is_counted(tenant: Tenant, showme_client: httpx.AsyncClient) -> None:
    """Whatever the reason a picture is refused, showme_media_rejected_total says so."""
    _invite_id, token = await new_invite(tenant)
    good = pictures.jpeg(pictures.scene(64, 48))
    refusals = {
        "invalid_link": await upload(showme_client, "x" * 24, good),
        "picture_format_not_allowed": await upload(showme_client, token, pictures.gif()),
        "picture_too_large": await upload(showme_client, token, b"\xff\xd8" + bytes(MAX_BYTES)),
        "invalid_input": await upload(showme_client, token, good, fields={"lat": "123"}),
        "bad_upload": await showme_client.post(
            "/api/v1/caller/media", headers={"X-ShowMe-Link": token}, content=b"{}"
        ),
    }
    assert (await upload(showme_client, token, good, key="refusal-key-1")).status_code == 201
    refusals["idempotency_conflict"] = await upload(
        showme_client, token, pictures.jpeg(pictures.scene(48, 64)), key="refusal-key-1"
    )
    metrics = (await showme_client.get("/metrics")).text
    for reason, answer in refusals.items():
        assert 400 <= answer.status_code < 500, (reason, answer.status_code)
        assert answer.json()["error"]["code"] == reason
        assert f'showme_media_rejected_total{{reason="{reason}"}} 1.0' in metrics, reason
