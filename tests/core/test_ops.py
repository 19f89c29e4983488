"""Operations endpoints: metrics on their own listener or behind a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from showme_core.config import Settings
from showme_core.testing import settings_for_tests
from tests.conftest import free_port, wait_for


def test_metrics_on_their_own_listener_and_behind_the_token(start_server: Any) -> None:
    port = free_port()
    server = start_server(
        SHOWME_METRICS_LISTEN=f"127.0.0.1:{port}", SHOWME_METRICS_TOKEN="scrape-me-please"
    )
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/metrics").status_code == 404
    scrape = f"http://127.0.0.1:{port}/metrics"

    def scraped() -> bool:
        try:
            answer = httpx.get(scrape, headers={"Authorization": "Bearer scrape-me-please"})
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and "showme_http_requests_total" in answer.text

    wait_for(scraped, 10, "metrics on their own listener")
    assert httpx.get(scrape).status_code == 401
    assert httpx.get(scrape, headers={"Authorization": "Bearer guess"}).status_code == 401


class TestMetricsToken:
    @pytest.fixture
    def showme_settings(self, tmp_path: Path, showme_database_url: str) -> Settings:
        return settings_for_tests(tmp_path, showme_database_url, metrics_token="scrape-me-please")

    async def test_a_token_is_needed(self, showme_client: httpx.AsyncClient) -> None:
        assert (await showme_client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert (await showme_client.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer scrape-me-please"}
        answer = await showme_client.get("/metrics", headers=right)
        assert answer.status_code == 200 and "showme_http_requests_total" in answer.text
