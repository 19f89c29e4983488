"""A CAD vendor's view of the API: a Python client generated from the served OpenAPI document by
a real generator (openapi-python-client) drives a real server through create, open, upload,
download and end, while a maintained SSE client (httpx-sse) follows the event feed.

The generator runs offline (no post-generation hook: those would run formatters, and nothing may
need the network) and must not warn: a warning means a part of the document was dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from showme_core.web.openapi_schemas import event_schema_name
from tests import pictures
from tests.conftest import LiveServer
from tests.openapi_answers import check_answer, validate

PACKAGE = "showme_cad_client"
# JPEG answers are read as bytes: this generator knows only application/octet-stream as binary,
# which its own configuration maps (docs/api.md says so to integrators).
GENERATOR_CONFIG = """\
post_hooks: []
content_type_overrides:
  image/jpeg: application/octet-stream
"""
FLOW = ["invite.created", "invite.opened", "media.created", "invite.ended"]
DEVICE = "cad-test-phone-1"


def generate(document: dict[str, Any], folder: Path) -> None:
    """Generate the client package into ``folder``; fail on any warning of the generator."""
    (folder / "openapi.json").write_text(json.dumps(document))
    (folder / "config.yaml").write_text(GENERATOR_CONFIG)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--config",
            str(folder / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "warning" not in said.lower(), said


@pytest.fixture
def client_package(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], ModuleType]]:
    """Generate and import a client package; forgotten again after the test."""

    def make(document: dict[str, Any]) -> ModuleType:
        generate(document, tmp_path)
        sys.path.insert(0, str(tmp_path))
        return importlib.import_module(PACKAGE)

    yield make
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def _checked(document: dict[str, Any], method: str, template: str, answer: Any) -> Any:
    """The generated client's answer, once the document is known to describe it exactly."""
    check_answer(
        document,
        method,
        template,
        int(answer.status_code),
        answer.headers.get("content-type", ""),
        answer.content,
    )
    return answer.parsed


async def follow_feed(
    url: str, key: str, after: int, invite_ids: set[str], seen: list[dict[str, Any]]
) -> None:
    """Follow the feed from ``after`` until ``invite.ended`` for one of ``invite_ids``."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http,
        aconnect_sse(http, "GET", "/api/v1/events", params={"after": after}) as source,
    ):
        assert source.response.status_code == 200
        async for frame in source.aiter_sse():
            if not frame.data:
                continue  # the opening `retry:` advice, which carries no event
            assert frame.event == "message", frame  # "ended": the credentials failed
            event = frame.json()
            assert int(frame.id) == event["id"]
            seen.append(event)
            if event["type"] == "invite.ended" and event["invite_id"] in invite_ids:
                return


async def test_a_generated_client_drives_the_api_and_an_sse_client_follows_it(
    start_server: Callable[..., LiveServer],
    client_package: Callable[[dict[str, Any]], ModuleType],
) -> None:
    server = start_server()
    server.cli("org", "create", "--slug", "north", "--name", "North", "--region", "BE")
    key = server.cli("apikey", "create", "--org", "north", "--name", "CAD").split()[-1]
    async with httpx.AsyncClient(timeout=10) as http:
        document = (await http.get(f"{server.url}/api/v1/openapi.json")).json()
    package = client_package(document)
    models = _module("models")
    cad = package.AuthenticatedClient(
        base_url=server.url, token=key, raise_on_unexpected_status=True
    )
    phone = package.Client(base_url=server.url, raise_on_unexpected_status=True)

    async with cad, phone:
        start = _checked(
            document,
            "GET",
            "/api/v1/invites",
            await _module("api.invites.list_invites").asyncio_detailed(client=cad, limit=1),
        ).last_event_id
        invite_ids: set[str] = set()
        seen: list[dict[str, Any]] = []
        feed = asyncio.create_task(follow_feed(server.url, key, start, invite_ids, seen))
        async with asyncio.timeout(60):
            create = _module("api.invites.create_invite")
            body = models.InviteCreate(
                phone="0470 12 34 56", incident_id="INC-2026-0042", send_sms=False
            )
            first = await create.asyncio_detailed(
                client=cad, body=body, idempotency_key="cad-invite-0001"
            )
            created = _checked(document, "POST", "/api/v1/invites", first)
            assert isinstance(created, models.CreatedInvite), created
            invite_ids.add(created.id)
            token = created.link.split("#", 1)[1]
            # A CAD that did not hear the answer retries: the same invite, created once.
            again = await create.asyncio_detailed(
                client=cad, body=body, idempotency_key="cad-invite-0001"
            )
            replayed = _checked(document, "POST", "/api/v1/invites", again)
            assert again.headers["idempotent-replayed"] == "true"
            assert (replayed.id, replayed.link) == (created.id, created.link)

            opened = _checked(
                document,
                "POST",
                "/api/v1/caller/open",
                await _module("api.caller.open_link").asyncio_detailed(
                    client=phone, x_show_me_link=token, x_show_me_device=DEVICE
                ),
            )
            assert opened.device == models.OpenedLinkDevice.HOLDER

            jpeg = pictures.jpeg()
            upload = models.PictureUpload(
                picture=_module("types").File(
                    payload=io.BytesIO(jpeg), file_name="scene.jpg", mime_type="image/jpeg"
                ),
                lat=50.8467,
                lon=4.3525,
            )
            stored = _checked(
                document,
                "POST",
                "/api/v1/caller/media",
                await _module("api.caller.upload_picture").asyncio_detailed(
                    client=phone,
                    body=upload,
                    x_show_me_link=token,
                    x_show_me_device=DEVICE,
                    idempotency_key="cad-client-test-0001",
                ),
            ).media

            listed = _checked(
                document,
                "GET",
                "/api/v1/invites/{invite_id}/media",
                await _module("api.media.list_invite_media").asyncio_detailed(
                    invite_id=created.id, client=cad, limit=10
                ),
            )
            assert [item.id for item in listed.items] == [stored.id]
            item = listed.items[0]
            assert item.location.lat == pytest.approx(50.8467)
            picture = _checked(
                document,
                "GET",
                "/api/v1/media/{media_id}",
                await _module("api.media.download_media").asyncio_detailed(
                    media_id=item.id, client=cad, download=models.DownloadMediaDownload("1")
                ),
            )
            assert hashlib.sha256(picture.payload.read()).hexdigest() == item.sha256

            # A refusal arrives as the documented error, parsed.
            missing = _checked(
                document,
                "GET",
                "/api/v1/invites/{invite_id}",
                await _module("api.invites.get_invite").asyncio_detailed(
                    invite_id="no-such-invite", client=cad
                ),
            )
            assert missing.error.code == "invite_not_found"

            ended = _checked(
                document,
                "POST",
                "/api/v1/invites/{invite_id}/end",
                await _module("api.invites.end_invite").asyncio_detailed(
                    invite_id=created.id, client=cad
                ),
            )
            assert ended.status == models.InviteStatus.ENDED
            await feed

    ours = [event for event in seen if event["invite_id"] == created.id]
    assert [event["type"] for event in ours] == FLOW
    for event in seen:
        validate(document, {"$ref": "#/components/schemas/Event"}, event)
        parsed = getattr(models, event_schema_name(event["type"]))
        assert parsed.from_dict(event).id == event["id"]
    assert ours[2]["data"]["media"]["sha256"] == item.sha256
