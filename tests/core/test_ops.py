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


def test_the_data_directory_key_is_made_once_whole_and_private(tmp_path: Path) -> None:
    """Without ``secret_keys`` an embedded instance keeps its key in the data directory: made
    once, readable by the service alone, and never a short or empty key."""
    from showme_core import config

    made = Settings(data_dir=tmp_path / "a").signing_keys()
    key_file = tmp_path / "a" / "secret.key"
    assert len(made[0]) >= 32 and key_file.read_text().strip() == made[0]
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret.key"]
    config._DATA_DIR_KEYS.clear()  # another process starting: it reads the same key
    assert Settings(data_dir=tmp_path / "a").signing_keys() == made
    # A file left empty (a crash or a full disk while an older release wrote it) is refused.
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "secret.key").write_text("")
    with pytest.raises(config.ConfigError, match="no usable key"):
        Settings(data_dir=tmp_path / "b").signing_keys()
