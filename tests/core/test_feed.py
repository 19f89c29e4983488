"""The console feed over a real server: live delivery, and a reconnect that loses nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from tests.conftest import LiveServer, wait_for


def seed(server: LiveServer) -> str:
    server.cli("org", "create", "--slug", "feed", "--name", "Feed PSAP", "--region", "BE")
    return server.cli("apikey", "create", "--org", "feed", "--name", "cad").strip().splitlines()[-1]


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse SSE lines into events, keeping the ``id:`` field."""
    current: dict[str, Any] = {}
    for line in lines:
        if line.startswith("id: "):
            current["sse_id"] = int(line[4:])
        elif line.startswith("data: "):
            current.update(json.loads(line[6:]))
        elif line == "" and current:
            yield current
            current = {}


def invite(client: httpx.Client, n: int) -> str:
    answer = client.post("/api/v1/invites", json={"phone": f"+3247000001{n}", "send_sms": False})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_feed_resumes_after_a_dropped_connection(start_server: Any) -> None:
    server: LiveServer = start_server()
    key = seed(server)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        first = invite(client, 0)
        received: list[dict[str, Any]] = []
        with client.stream("GET", "/api/v1/events", params={"after": 0}) as feed:
            assert feed.headers["content-type"].startswith("text/event-stream")
            stream = events(feed.iter_lines())
            received.append(next(stream))
            assert received[0]["invite_id"] == first
            # Live: an invite made now arrives on the open feed.
            second = invite(client, 1)
            received.append(next(stream))
            assert received[1]["invite_id"] == second
        # The connection dropped. Three more invites happen while the console is away.
        missed = [invite(client, n) for n in range(2, 5)]
        last_seen = received[-1]["sse_id"]
        with client.stream(
            "GET", "/api/v1/events", headers={"Last-Event-ID": str(last_seen)}
        ) as feed:
            stream = events(feed.iter_lines())
            resumed = [next(stream) for _ in missed]
    assert [e["invite_id"] for e in resumed] == missed
    ids = [e["sse_id"] for e in received + resumed]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # nothing lost, nothing twice
    assert all(e["type"] == "invite.created" for e in received + resumed)


def test_feed_without_resume_point_starts_at_now(start_server: Any) -> None:
    server: LiveServer = start_server()
    key = seed(server)
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        invite(client, 0)
        with client.stream("GET", "/api/v1/events") as feed:
            lines = feed.iter_lines()
            assert next(lines).startswith("retry:")
            fresh = invite(client, 1)
            assert next(events(lines))["invite_id"] == fresh
        refused = client.get("/api/v1/events", headers={"Last-Event-ID": "nonsense"})
        assert refused.status_code == 422


def test_no_token_or_key_in_the_server_log(start_server: Any) -> None:
    server: LiveServer = start_server()
    key = seed(server)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.post(
            "/api/v1/invites",
            json={"phone": "+32470123456"},
            headers={"Authorization": f"Bearer {key}"},
        )
        token = answer.json()["link"].split("#", 1)[1]
        assert client.post("/api/v1/caller/open", headers={"X-ShowMe-Link": token}).is_success
        client.post("/api/v1/caller/open", headers={"X-ShowMe-Link": token + "x"})
    wait_for(lambda: "sms kept in outbox" in server.log_text(), 10, "the outbox log line")
    log = server.log_text()
    assert '"path": "/api/v1/caller/open"' in log
    assert token not in log
    assert key not in log
