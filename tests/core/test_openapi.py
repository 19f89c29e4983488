"""The OpenAPI document tells the truth: it is valid OpenAPI 3.1, the refusals routes give are the
ones it lists, its page limits are the ones enforced, events match its schemas, and a query
parameter it does not list is refused (docs/api.md, "Query strings")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from showme_core import event_types
from showme_core.accounts import create_api_key
from showme_core.testing import Tenant, client_for, read_feed_backlog
from showme_core.web.openapi import build_document
from showme_core.web.openapi_errors import ERROR_STATUS
from showme_core.web.openapi_schemas import event_schema_name
from tests import pictures
from tests.openapi_answers import check_answer, validate

# Streams without end, and reports providers send: walked by their own tests below.
NOT_WALKED = {"/api/v1/events"}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_document()
    errors = [str(error) for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    mapping = document["components"]["schemas"]["Event"]["discriminator"]["mapping"]
    assert set(mapping) == set(event_types.CATALOGUE)
    for name in event_types.CATALOGUE:
        schema = document["components"]["schemas"][event_schema_name(name)]
        assert schema["properties"]["type"]["const"] == name


async def _invite_with_picture(tenant: Tenant, app: Any) -> tuple[dict[str, Any], str, str]:
    """An invite of incident ``INC-9`` with one picture: the invite, its token and the media id."""
    created = await tenant.cad.post(
        "/api/v1/invites",
        json={"phone": "+32470123456", "send_sms": False, "incident_id": "INC-9"},
    )
    assert created.status_code == 201, created.text
    token = created.json()["link"].split("#", 1)[1]
    async with client_for(app) as phone:
        uploaded = await phone.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": token},
            files={"picture": ("p.jpg", pictures.jpeg(), "image/jpeg")},
        )
    assert uploaded.status_code == 201, uploaded.text
    return created.json(), token, uploaded.json()["media"]["id"]


async def _checked(
    client: httpx.AsyncClient, method: str, template: str, url: str, **kwargs: Any
) -> httpx.Response:
    answer = await client.request(method, url, **kwargs)
    check_answer(
        build_document(),
        method,
        template,
        answer.status_code,
        answer.headers.get("content-type", ""),
        answer.content,
    )
    return answer


# Codes the command line and the signaling socket give, never an HTTP answer.
NOT_HTTP = {"email_taken", "invalid_email", "invalid_slug", "slug_taken", "weak_password"}


def test_every_error_code_raised_is_documented() -> None:
    """A code raised anywhere in the core is in the document's table and in docs/api.md."""
    root = Path(__file__).resolve().parents[2]
    raised = set()
    for source in (root / "showme_core").rglob("*.py"):
        raised |= set(re.findall(r'\bcode="([a-z_]+)"', source.read_text()))
    assert raised - NOT_HTTP - set(ERROR_STATUS) == set()
    api = (root / "docs" / "api.md").read_text()
    assert {code for code in ERROR_STATUS if f"`{code}`" not in api} == set()


async def test_unknown_query_parameters_are_refused(tenant: Tenant, showme_app: Any) -> None:
    invite, token, media_id = await _invite_with_picture(tenant, showme_app)
    invites = f"/api/v1/invites/{invite['id']}"
    cases = [
        ("GET", "/api/v1/invites", "/api/v1/invites?limt=5", "limt"),
        ("GET", "/api/v1/invites/{invite_id}", f"{invites}?v=2", "v"),
        ("GET", "/api/v1/media", "/api/v1/media?limit=5&page=2", "page"),
        # Documented on the organisation's list, not on an invite's.
        (
            "GET",
            "/api/v1/invites/{invite_id}/media",
            f"{invites}/media?incident_id=INC-9",
            "incident_id",
        ),
        ("GET", "/api/v1/media/{media_id}", f"/api/v1/media/{media_id}?size=big", "size"),
        ("GET", "/api/v1/events", "/api/v1/events?since=0", "since"),
        ("GET", "/api/v1/incidents/{incident_id}", "/api/v1/incidents/INC-9?all=1", "all"),
        ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json?_=1700000000", "_"),
        ("POST", "/api/v1/invites", "/api/v1/invites?dry_run=1", "dry_run"),
        ("POST", "/api/v1/invites/{invite_id}/end", f"{invites}/end?reason=x", "reason"),
    ]
    for method, template, url, name in cases:
        body = {"phone": "+32470123456", "send_sms": False} if method == "POST" else None
        answer = await _checked(tenant.cad, method, template, url, json=body)
        assert answer.status_code == 422, (url, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["fields"] == [
            {"field": name, "in": "query", "problem": error["fields"][0]["problem"]}
        ]
        assert repr(name) in error["message"], error["message"]
    head = await tenant.cad.head("/api/v1/invites?limt=5")
    assert head.status_code == 422
    async with client_for(showme_app) as phone:
        refused = await _checked(
            phone,
            "POST",
            "/api/v1/caller/open",
            "/api/v1/caller/open?lang=fr",
            headers={"X-ShowMe-Link": token},
        )
    assert refused.status_code == 422
    # Refused before any route code ran: nothing was created, ended or opened.
    listed = (await tenant.cad.get("/api/v1/invites")).json()["items"]
    assert [(i["id"], i["status"]) for i in listed] == [(invite["id"], "pending")]


def _value(parameter: dict[str, Any]) -> str:
    """A valid value for a documented query parameter; a new one must be added here."""
    schema = parameter["schema"]
    if parameter["name"] == "limit":
        return str(schema["maximum"])
    if parameter["name"] == "before":
        return (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    if parameter["name"] == "incident_id":
        return "INC-9"
    if "enum" in schema:
        return str(schema["enum"][0])
    raise AssertionError(f"no test value for the query parameter {parameter['name']!r}")


async def test_every_documented_query_parameter_is_accepted(
    tenant: Tenant, showme_app: Any
) -> None:
    invite, _token, media_id = await _invite_with_picture(tenant, showme_app)
    ids = {"invite_id": invite["id"], "media_id": media_id, "incident_id": "INC-9"}
    walked = 0
    for template, operations in build_document()["paths"].items():
        for method, operation in operations.items():
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            if not query or template in NOT_WALKED or "/sms/callbacks/" in template:
                continue
            url = template.format(**ids) + "?" + urlencode({p["name"]: _value(p) for p in query})
            answer = await _checked(tenant.cad, method.upper(), template, url)
            assert answer.status_code == 200, (url, answer.text)
            walked += 1
    assert walked >= 4
    # The feed's own parameter, read in-process (a feed does not end by itself).
    headers = {"authorization": f"Bearer {tenant.api_key}"}
    events = await read_feed_backlog(showme_app, headers, after=0)
    assert [e["type"] for e in events] == ["invite.created", "media.created"]
    document = build_document()
    for event in events:
        validate(document, {"$ref": "#/components/schemas/Event"}, event)


async def test_delivery_reports_take_any_query_parameter(showme_client: httpx.AsyncClient) -> None:
    # Vonage sends its report as a GET query: whatever it names reaches the provider's plugin,
    # which refuses this one for what it says, not for how it is spelt.
    for url in (
        "/api/v1/sms/callbacks/outbox?msisdn=32470123456&status=delivered&messageId=1",
        "/api/v1/sms/callbacks/outbox/msg-1/secret?anything=at+all",
    ):
        template = (
            "/api/v1/sms/callbacks/{provider}"
            if url.count("/") == 5
            else "/api/v1/sms/callbacks/{provider}/{message_id}/{secret}"
        )
        answer = await _checked(showme_client, "GET", template, url)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "callback_refused"


async def test_page_limits_are_the_documented_ones(tenant: Tenant, showme_app: Any) -> None:
    invite, _token, _media_id = await _invite_with_picture(tenant, showme_app)
    checked = 0
    for template, operations in build_document()["paths"].items():
        for method, operation in operations.items():
            limit = next((p for p in operation.get("parameters", []) if p["name"] == "limit"), None)
            if limit is None:
                continue
            url = template.format(invite_id=invite["id"])
            schema = limit["schema"]
            for value, status in (
                (schema["minimum"], 200),
                (schema["maximum"], 200),
                (schema["maximum"] + 1, 422),
                (schema["minimum"] - 1, 422),
            ):
                answer = await _checked(
                    tenant.cad, method.upper(), template, url, params={"limit": value}
                )
                assert answer.status_code == status, (url, value, answer.text)
            # Without `limit`, the documented default: one item here, so only its bound shows.
            assert schema["minimum"] <= schema["default"] <= schema["maximum"]
            checked += 1
    assert checked == 3


@pytest.fixture
async def reader(showme: Any, tenant: Tenant) -> Any:
    """A CAD client of ``tenant`` whose key has only ``invites:read``."""
    async with showme.transaction() as tx:
        _key, secret = await create_api_key(
            tx.conn, organisation_id=tenant.org.id, name="reader", scopes=["invites:read"]
        )
    async with client_for(tenant.cad._transport.app) as client:  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {secret}"
        yield client


async def test_refusals_are_the_documented_ones(
    tenant: Tenant, showme_app: Any, showme_client: httpx.AsyncClient, reader: httpx.AsyncClient
) -> None:
    invite, token, media_id = await _invite_with_picture(tenant, showme_app)
    other = (
        await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123457", "send_sms": False})
    ).json()
    bad_key = {"Authorization": "Bearer smk_not_a_key"}
    foreign = {"Origin": "https://elsewhere.example"}
    one = f"/api/v1/invites/{invite['id']}"
    cases: list[tuple[httpx.AsyncClient, str, str, str, dict[str, Any], str]] = [
        (showme_client, "GET", "/api/v1/invites", "/api/v1/invites", {}, "not_authenticated"),
        (showme_client, "GET", "/api/v1/me", "/api/v1/me", {"headers": bad_key}, "bad_api_key"),
        (
            reader,
            "POST",
            "/api/v1/invites",
            "/api/v1/invites",
            {"json": {"phone": "+32470123456"}},
            "missing_scope",
        ),
        (reader, "GET", "/api/v1/media", "/api/v1/media", {}, "missing_scope"),
        (
            reader,
            "GET",
            "/api/v1/incidents/{incident_id}",
            "/api/v1/incidents/INC-9",
            {},
            "missing_scope",
        ),
        (
            tenant.client,
            "POST",
            "/api/v1/invites",
            "/api/v1/invites",
            {"json": {"phone": "+32470123456"}, "headers": foreign},
            "origin_refused",
        ),
        (
            tenant.cad,
            "POST",
            "/api/v1/invites",
            "/api/v1/invites",
            {"content": b"phone", "headers": {"Content-Type": "text/plain"}},
            "not_json",
        ),
        (
            tenant.cad,
            "POST",
            "/api/v1/invites",
            "/api/v1/invites",
            {"json": {"phone": "12"}},
            "invalid_phone",
        ),
        (
            tenant.cad,
            "POST",
            "/api/v1/invites",
            "/api/v1/invites",
            {"json": {"phone": "+32470123456", "language": "xx"}},
            "unsupported_language",
        ),
        (tenant.cad, "GET", "/api/v1/invites", "/api/v1/invites?before=soon", {}, "invalid_input"),
        (
            tenant.cad,
            "GET",
            "/api/v1/invites/{invite_id}",
            "/api/v1/invites/nope",
            {},
            "invite_not_found",
        ),
        (
            tenant.cad,
            "GET",
            "/api/v1/media/{media_id}",
            "/api/v1/media/nope",
            {},
            "media_not_found",
        ),
        (
            tenant.cad,
            "GET",
            "/api/v1/incidents/{incident_id}",
            "/api/v1/incidents/INC-0",
            {},
            "incident_not_found",
        ),
        (tenant.cad, "GET", "/api/v1/events", "/api/v1/events?after=-1", {}, "invalid_input"),
        (
            tenant.client,
            "POST",
            "/api/v1/invites/{invite_id}/legal-hold",
            f"{one}/legal-hold",
            {"json": {"hold": True}},
            "admin_only",
        ),
        (
            showme_client,
            "POST",
            "/api/v1/caller/open",
            "/api/v1/caller/open",
            {"headers": {"X-ShowMe-Link": "x" * 24}},
            "invalid_link",
        ),
        (
            showme_client,
            "POST",
            "/api/v1/caller/media",
            "/api/v1/caller/media",
            {"headers": {"X-ShowMe-Link": token}, "content": b"x"},
            "bad_upload",
        ),
        (
            showme_client,
            "POST",
            "/api/v1/caller/media",
            "/api/v1/caller/media",
            {
                "headers": {"X-ShowMe-Link": token},
                "files": {"picture": ("p.gif", pictures.gif(), "image/gif")},
            },
            "picture_format_not_allowed",
        ),
        (
            showme_client,
            "POST",
            "/api/v1/session",
            "/api/v1/session",
            {"json": {"email": "nobody@example.test", "password": "wrong password"}},
            "bad_credentials",
        ),
    ]
    for client, method, template, url, kwargs, code in cases:
        answer = await _checked(client, method, template, url, **kwargs)
        assert answer.json()["error"]["code"] == code, (url, answer.text)
    # Opened, a link cannot be resent; ended, it cannot be opened.
    async with client_for(showme_app) as phone:
        opened = await _checked(
            phone,
            "POST",
            "/api/v1/caller/open",
            "/api/v1/caller/open",
            headers={"X-ShowMe-Link": token},
        )
        assert opened.status_code == 200
        resent = await _checked(
            tenant.cad, "POST", "/api/v1/invites/{invite_id}/resend", f"{one}/resend"
        )
        assert resent.json()["error"]["code"] == "already_opened"
        ended = await _checked(tenant.cad, "POST", "/api/v1/invites/{invite_id}/end", f"{one}/end")
        assert ended.status_code == 200
        gone = await _checked(
            phone,
            "POST",
            "/api/v1/caller/open",
            "/api/v1/caller/open",
            headers={"X-ShowMe-Link": token},
        )
        assert gone.json()["error"]["code"] == "link_ended"
    # And the successes along the way match their schemas.
    for template, url in (
        ("/api/v1/invites/{invite_id}", f"/api/v1/invites/{other['id']}"),
        ("/api/v1/me", "/api/v1/me"),
        ("/api/v1/outbox", "/api/v1/outbox"),
        ("/api/v1/incidents/{incident_id}", "/api/v1/incidents/INC-9"),
        ("/api/v1/incidents/{incident_id}/eido", "/api/v1/incidents/INC-9/eido"),
        ("/api/v1/media/{media_id}/thumbnail", f"/api/v1/media/{media_id}/thumbnail"),
        ("/api/v1/console/extras", "/api/v1/console/extras"),
    ):
        answer = await _checked(tenant.client, "GET", template, url)
        assert answer.status_code == 200, (url, answer.text)
