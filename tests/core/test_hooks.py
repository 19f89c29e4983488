"""The invite, picture and stream hooks, each with an example plugin that uses it: an incident
stamp from the CAD, a hash block-list, a stream log (docs/plugins.md)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime
from typing import Any, ClassVar

import pytest

from showme_core import plugins
from showme_core.auth import Principal
from showme_core.hookspecs import hookimpl
from showme_core.invites import Invite
from showme_core.media import Media
from showme_core.providers import (
    InviteDraft,
    InviteRefused,
    PictureCandidate,
    PictureRefused,
    StreamChange,
)
from showme_core.signaling import Peer
from showme_core.testing import Tenant, client_for, phone_for
from tests import pictures

BLOCKED = pictures.jpeg(pictures.scene(40, 30))


class IncidentStamp:
    """What a CAD integration does: find the open incident for the calling number, and stamp
    it, with the CAD's own reference, on the invite; refuse numbers the CAD says not to text."""

    OPEN_INCIDENTS: ClassVar[dict[str, str]] = {"+32470123456": "INC-2026-0042"}
    DO_NOT_TEXT: ClassVar[set[str]] = {"+32470000000"}

    @hookimpl
    async def showme_amend_invite(self, draft: InviteDraft, principal: Principal) -> None:
        if draft.phone in self.DO_NOT_TEXT:
            raise InviteRefused("The CAD marks this number as not to be texted.")
        draft.incident_id = draft.incident_id or self.OPEN_INCIDENTS.get(draft.phone)
        draft.labels["cad"] = "north-cad"
        draft.labels["asked_by"] = principal.actor


class BlockList:
    """A hash block-list: pictures already known to be abuse never reach a dispatcher."""

    def __init__(self) -> None:
        self.blocked = {hashlib.sha256(BLOCKED).hexdigest()}
        self.stored: list[str] = []

    @hookimpl
    def showme_check_picture(self, picture: PictureCandidate) -> None:
        if picture.upload_sha256 in self.blocked:
            raise PictureRefused("This picture cannot be accepted.")

    @hookimpl
    async def showme_on_picture_stored(self, invite: Invite, media: Media) -> None:
        self.stored.append(f"{invite.id}:{media.sha256}")


class StreamLog:
    """A log of live sessions, e.g. for a PSAP's quality report."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []

    @hookimpl
    def showme_on_stream(self, invite: Invite, stream: StreamChange) -> None:
        assert stream.invite_id == invite.id
        self.seen.append((stream.change, stream.rung, stream.outcome))


@pytest.fixture
def block_list() -> BlockList:
    return BlockList()


@pytest.fixture
def stream_log() -> StreamLog:
    return StreamLog()


@pytest.fixture
def showme_plugins(block_list: BlockList, stream_log: StreamLog) -> list[object]:
    return [IncidentStamp(), block_list, stream_log]


async def test_an_invite_is_stamped_by_the_cad_or_refused(tenant: Tenant) -> None:
    stamped = await tenant.cad.post("/api/v1/invites", json={"phone": "0470 12 34 56"})
    assert stamped.status_code == 201, stamped.text
    assert stamped.json()["incident_id"] == "INC-2026-0042"
    assert stamped.json()["labels"] == {
        "cad": "north-cad",
        "asked_by": stamped.json()["created_by"],
    }
    listed = await tenant.cad.get("/api/v1/invites?incident_id=INC-2026-0042")
    assert [item["id"] for item in listed.json()["items"]] == [stamped.json()["id"]]
    refused = await tenant.client.post("/api/v1/invites", json={"phone": "+32470000000"})
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "invite_refused",
        "message": "The CAD marks this number as not to be texted.",
        "request_id": refused.json()["error"]["request_id"],
    }
    # Nothing was made for the refused one.
    everything = (await tenant.cad.get("/api/v1/invites")).json()["items"]
    assert [item["phone"] for item in everything] == ["+32470123456"]


async def test_a_blocked_picture_is_refused_and_the_rest_reported_stored(
    tenant: Tenant, showme: Any, showme_app: Any, block_list: BlockList
) -> None:
    created = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123457", "send_sms": False}
    )
    token = created.json()["link"].split("#", 1)[1]
    async with client_for(showme_app) as phone:
        refused = await phone.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": token},
            files={"picture": ("p.jpg", BLOCKED, "image/jpeg")},
        )
        taken = await phone.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": token},
            files={"picture": ("p.jpg", pictures.jpeg(pictures.scene(64, 48)), "image/jpeg")},
        )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "picture_refused"
    assert refused.json()["error"]["message"] == "This picture cannot be accepted."
    assert taken.status_code == 201
    await showme.drain()
    listed = (await tenant.cad.get(f"/api/v1/invites/{created.json()['id']}/media")).json()
    assert [item["id"] for item in listed["items"]] == [taken.json()["media"]["id"]]
    assert block_list.stored == [f"{created.json()['id']}:{taken.json()['media']['sha256']}"]
    metrics = (await tenant.cad.get("/metrics")).text
    assert 'showme_media_rejected_total{reason="picture_refused"} 1.0' in metrics


async def test_a_live_session_is_logged_from_start_to_outcome(
    tenant: Tenant, showme: Any, stream_log: StreamLog
) -> None:
    created = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123458", "send_sms": False}
    )
    invite_id = created.json()["id"]

    async def quiet(*_args: Any) -> None:
        return None

    hub = showme.hub
    expires = datetime.fromisoformat(created.json()["expires_at"].replace("Z", "+00:00"))
    room = hub.room_for(tenant.org.id, invite_id, expires)
    caller = Peer("caller", tenant.org.id, invite_id, f"caller:{invite_id}", quiet, quiet)
    for message in (
        {"type": "report", "event": "camera", "result": "granted"},
        {"type": "report", "event": "stills"},
        {"type": "report", "event": "connected", "route": "relay"},
        {"type": "report", "event": "stopped"},
    ):
        await hub.reports.handle(caller, room, message)
    await showme.drain()
    assert stream_log.seen == [
        ("started", None, None),
        ("rung", "stills", None),
        ("rung", "video", None),
        ("ended", None, "video"),
    ]
    # A session still live when its invite ends ends with it.
    room.state = "connected"
    await hub.end(invite_id)
    await showme.drain()
    assert stream_log.seen[-1] == ("ended", None, "video")
    # ... and the record says so, for the feed, consumers and the incident.
    events = await showme.events_after(tenant.org.id, 0, limit=500)
    ended = [e.data["stream"] for e in events if e.type == "stream.ended"]
    assert ended[-1] == {"invite_id": invite_id, "state": "ended", "reason": "link_ended"}


class BrokenScanner:
    @hookimpl
    def showme_check_picture(self, picture: PictureCandidate) -> None:
        raise RuntimeError("the scanner is down")


class TestAFailingChecker:
    @pytest.fixture
    def showme_plugins(self) -> list[object]:
        return [BrokenScanner()]

    async def test_lets_nothing_through(self, tenant: Tenant, showme: Any, showme_app: Any) -> None:
        created = await tenant.cad.post(
            "/api/v1/invites", json={"phone": "+32470123459", "send_sms": False}
        )
        token = created.json()["link"].split("#", 1)[1]
        async with client_for(showme_app) as phone:
            answer = await phone.post(
                "/api/v1/caller/media",
                headers={"X-ShowMe-Link": token},
                files={"picture": ("p.jpg", pictures.jpeg(pictures.scene(64, 48)), "image/jpeg")},
            )
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "picture_refused"
        assert "showme_check_picture failed" in showme.settings.log_file.read_text()


class Hanging:
    """A plugin whose calls never return for one phone number or one invite."""

    def __init__(self) -> None:
        self.hang_phone = "+32470999999"  # invites for it are never amended
        self.hang_picture_phone = "+32470888888"  # pictures for its invites never checked
        self.hang_invite: str | None = None
        self.told: list[tuple[str, str]] = []

    @hookimpl
    async def showme_amend_invite(self, draft: InviteDraft) -> None:
        if draft.phone == self.hang_phone:
            await asyncio.sleep(3600)

    @hookimpl
    async def showme_check_picture(self, invite: Invite) -> None:
        if invite.phone == self.hang_picture_phone:
            await asyncio.sleep(3600)

    @hookimpl
    async def showme_on_stream(self, stream: StreamChange) -> None:
        self.told.append((stream.invite_id, stream.change))
        if stream.invite_id == self.hang_invite:
            await asyncio.sleep(3600)


class TestAHangingPlugin:
    """A plugin that hangs refuses what it decides on, after a bound, and holds nothing else."""

    @pytest.fixture
    def hanging(self, monkeypatch: pytest.MonkeyPatch) -> Hanging:
        monkeypatch.setattr(plugins, "HOOK_TIMEOUT_SECONDS", 0.5)
        return Hanging()

    @pytest.fixture
    def showme_plugins(self, hanging: Hanging) -> list[object]:
        return [hanging]

    async def test_an_invite_is_refused_after_the_bound(self, tenant: Tenant) -> None:
        started = time.monotonic()
        refused = await tenant.cad.post(
            "/api/v1/invites", json={"phone": "+32470999999", "send_sms": False}
        )
        assert time.monotonic() - started < 5
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invite_refused"
        fine = await tenant.cad.post(
            "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
        )
        assert fine.status_code == 201

    async def test_a_picture_is_refused_after_the_bound_and_frees_its_slot(
        self, tenant: Tenant, showme: Any, showme_app: Any, hanging: Hanging
    ) -> None:
        created = await tenant.cad.post(
            "/api/v1/invites", json={"phone": hanging.hang_picture_phone, "send_sms": False}
        )
        phone = phone_for(showme_app, created.json()["link"])
        await phone.open()
        # More tries than a phone has upload slots: each is answered, none is left holding one.
        for _ in range(3):
            started = time.monotonic()
            answer = await phone.upload(pictures.jpeg(pictures.scene(64, 48)))
            assert time.monotonic() - started < 5
            assert answer.status_code == 422
            assert answer.json()["error"]["code"] == "picture_refused"
        assert "showme_check_picture failed" in showme.settings.log_file.read_text()

    async def test_one_sessions_hanging_news_does_not_hold_anothers(
        self, tenant: Tenant, showme: Any, showme_app: Any, hanging: Hanging
    ) -> None:
        made = [
            await tenant.cad.post(
                "/api/v1/invites", json={"phone": f"+3247012345{n}", "send_sms": False}
            )
            for n in range(2)
        ]
        first, second = (answer.json()["id"] for answer in made)
        hanging.hang_invite = first
        hub = showme.hub
        for answer in made:
            invite_id = answer.json()["id"]
            expires = datetime.fromisoformat(answer.json()["expires_at"].replace("Z", "+00:00"))
            room = hub.room_for(tenant.org.id, invite_id, expires)
            caller = Peer("caller", tenant.org.id, invite_id, f"caller:{invite_id}", quiet, quiet)
            await hub.reports.handle(
                caller, room, {"type": "report", "event": "camera", "result": "granted"}
            )
            await hub.reports.handle(
                caller, room, {"type": "report", "event": "connected", "route": "direct"}
            )
        deadline = time.monotonic() + 5
        while (second, "rung") not in hanging.told:
            assert time.monotonic() < deadline, hanging.told
            await asyncio.sleep(0.02)
        assert (second, "started") in hanging.told and (first, "started") in hanging.told


async def quiet(*_args: Any) -> None:
    return None


class First:
    @hookimpl(tryfirst=True)
    def showme_amend_invite(self, draft: InviteDraft) -> None:
        draft.labels["order"] = draft.labels.get("order", "") + "first,"


class Last:
    @hookimpl(trylast=True)
    def showme_amend_invite(self, draft: InviteDraft) -> None:
        draft.labels["order"] = draft.labels.get("order", "") + "last"


class TestHookOrder:
    @pytest.fixture
    def showme_plugins(self) -> list[object]:
        return [Last(), First()]

    async def test_tryfirst_and_trylast_are_honoured(self, tenant: Tenant) -> None:
        created = await tenant.cad.post(
            "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
        )
        assert created.json()["labels"] == {"order": "first,last"}
