"""HTTP surface: OpenAPI in step with the routes, one error shape, headers, health and metrics."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from citizen_app import FIRST_LOAD_BUDGET, PAGE_BUDGET
from showme_core.testing import Tenant
from tests.caller_page import transferred


async def test_openapi_describes_exactly_the_api_routes(
    showme_app: Any, showme_client: httpx.AsyncClient
) -> None:
    document = (await showme_client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        # A convertor (`{incident_id:path}`) is how the route reads its id, not part of the API.
        (method, re.sub(r"{(\w+):\w+}", r"{\1}", route.path))
        for route in showme_app.routes
        if isinstance(route, Route) and route.path.startswith("/api/v1")
        for method in (route.methods or ())
        if method != "HEAD"
    }
    assert described == served
    tags = {tag["name"] for tag in document["tags"]}
    ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"], (method, path)
            assert re.fullmatch(r"[a-z]+(_[a-z0-9]+)*", operation["operationId"]), (method, path)
            ids.append(operation["operationId"])
            assert operation["tags"] and set(operation["tags"]) <= tags, (method, path)
            assert "default" in operation["responses"], (method, path)
            assert any(status.startswith("2") for status in operation["responses"]), (method, path)
            if "429" in operation["responses"]:
                assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)
    assert len(ids) == len(set(ids)), "two operations share an operationId"
    refs = _refs(document)
    assert "#/components/headers/RetryAfter" in refs
    for ref in refs:
        assert _resolve(document, ref) is not None, ref


def _resolve(document: dict[str, Any], ref: str) -> Any:
    """The node a local ``$ref`` (a JSON pointer) names, or None."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/nothing-here", 404, "not_found"),
        ("PUT", "/api/v1/invites", 405, "method_not_allowed"),
        ("GET", "/api/v1/invites", 401, "not_authenticated"),
        ("POST", "/api/v1/caller/open", 401, "invalid_link"),
    ],
)
async def test_errors_share_one_shape(
    showme_client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    answer = await showme_client.request(method, path)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == answer.headers["x-request-id"]


async def test_wrong_password_is_401_and_right_one_sets_a_strict_cookie(
    tenant: Tenant, showme_client: httpx.AsyncClient
) -> None:
    wrong = await showme_client.post(
        "/api/v1/session", json={"email": tenant.email, "password": "nope nope nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "bad_credentials"
    unknown = await showme_client.post(
        "/api/v1/session", json={"email": "nobody@x.test", "password": "nope nope nope"}
    )
    assert unknown.json() | {"error": {}} == wrong.json() | {"error": {}}
    right = await showme_client.post(
        "/api/v1/session", json={"email": tenant.email.upper(), "password": tenant.password}
    )
    assert right.status_code == 200
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert (await showme_client.get("/api/v1/me")).json()["user"]["email"] == tenant.email
    assert (await showme_client.delete("/api/v1/session")).status_code == 204
    assert (await showme_client.get("/api/v1/me")).status_code == 401


async def test_tampered_cookie_is_refused(tenant: Tenant) -> None:
    cookie = tenant.client.cookies["showme_session"]
    # Change the payload, not the signature's last characters: base64 ignores the low bits of the
    # final character, so replacing it can leave the signature valid.
    payload, _, signature = cookie.partition(".")
    changed = ("B" if payload[0] == "A" else "A") + payload[1:]
    tenant.client.cookies.set("showme_session", f"{changed}.{signature}")
    assert (await tenant.client.get("/api/v1/me")).status_code == 401


async def test_security_headers_on_pages_and_api(showme_client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/openapi.json", "/healthz", "/api/v1/invites"):
        headers = (await showme_client.get(path)).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        # The signaling socket's origin spelled out, for Safari before 16.
        assert "connect-src 'self' ws://showme.test;" in csp
        assert headers["referrer-policy"] == "no-referrer"
        assert "camera=(self)" in headers["permissions-policy"]
        assert headers["x-content-type-options"] == "nosniff"


async def test_request_id_is_kept_when_sane(showme_client: httpx.AsyncClient) -> None:
    sane = await showme_client.get("/healthz", headers={"X-Request-ID": "abc-123-def-456"})
    assert sane.headers["x-request-id"] == "abc-123-def-456"
    odd = await showme_client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert odd.headers["x-request-id"] != "<script>"


async def test_health_and_metrics(tenant: Tenant, showme_client: httpx.AsyncClient) -> None:
    assert (await showme_client.get("/healthz")).json() == {"status": "ok", "database": "up"}
    await tenant.client.post("/api/v1/invites", json={"phone": "+32470123456"})
    metrics = (await showme_client.get("/metrics")).text
    assert 'showme_invites_created_total{via="user"}' in metrics
    assert "showme_http_requests_total" in metrics
    assert 'route="/api/v1/invites"' in metrics


async def test_root_goes_to_the_console(showme_client: httpx.AsyncClient) -> None:
    answer = await showme_client.get("/")
    assert answer.status_code == 302
    assert answer.headers["location"] == "/console/"


@pytest.mark.parametrize("language", ["en", "fr", "nl", "de"])
async def test_the_caller_page_fits_its_budget(
    showme_client: httpx.AsyncClient, language: str
) -> None:
    """The first load, and everything to stream and snap (the modules loaded once the link is
    open too), as transferred (gzip), from one origin, within the budget in ``citizen_app``."""
    first = await transferred(showme_client, language, everything=False)
    everything = await transferred(showme_client, language, everything=True)
    assert "/c/caller.js" in first and "/c/caller.css" in first
    assert "/c/live.js" in everything and "/c/pictures.js" in everything
    assert sum(first.values()) <= FIRST_LOAD_BUDGET, first
    assert sum(everything.values()) <= PAGE_BUDGET, everything


async def test_refused_sign_in_is_audited(tenant: Tenant, showme: Any) -> None:
    from sqlalchemy import func, select

    from showme_core.store.schema import audit_records

    async def refusals() -> int:
        async with showme.db.read() as db:
            query = select(func.count()).where(audit_records.c.action == "session.refused")
            return int(await db.scalar(query) or 0)

    before = await refusals()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tenant.client._transport.app),  # type: ignore[attr-defined]
        base_url="http://showme.test",
        headers={"Origin": "http://showme.test"},
    ) as anonymous:
        wrong = await anonymous.post(
            "/api/v1/session", json={"email": tenant.email, "password": "wrong password"}
        )
    assert wrong.status_code == 401
    assert await refusals() == before + 1


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"[" * 50_000, 400),
        (b'{"phone": "+32470123456", "incident_id": "a\\u0000b"}', 422),
    ],
)
async def test_hostile_bodies_get_a_clear_4xx(tenant: Tenant, content: bytes, status: int) -> None:
    answer = await tenant.client.post(
        "/api/v1/invites", content=content, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    assert (await tenant.client.get("/api/v1/invites")).json()["items"] == []


async def test_paging_before_accepts_any_offset(tenant: Tenant) -> None:
    from datetime import datetime, timedelta

    created = (
        await tenant.cad.post("/api/v1/invites", json={"phone": "+32470123456", "send_sms": False})
    ).json()
    at = datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
    later = (at + timedelta(minutes=1)).astimezone(
        __import__("datetime").timezone(timedelta(hours=-2))
    )
    page = await tenant.client.get("/api/v1/invites", params={"before": later.isoformat()})
    assert [i["id"] for i in page.json()["items"]] == [created["id"]]


async def test_absurd_resume_point_is_422(tenant: Tenant) -> None:
    answer = await tenant.cad.get("/api/v1/events", params={"after": str(2**64)})
    assert answer.status_code == 422


async def test_a_hostile_host_header_does_not_reach_the_policy(
    showme_client: httpx.AsyncClient,
) -> None:
    answer = await showme_client.get("/c/", headers={"Host": "evil.test; script-src *"})
    assert "script-src *" not in answer.headers["content-security-policy"]
    assert "connect-src 'self';" in answer.headers["content-security-policy"]
