"""The plugin contract: a third-party package plugs in through its entry point, by allow-list."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import showme_sms_pigeon
from showme_sms_pigeon.provider import LOFT

from showme_core.app import ShowMe, create_app
from showme_core.config import Settings
from showme_core.defaults.storage_fs import FilesystemStorage
from showme_core.hookspecs import hookimpl
from showme_core.plugins import PluginError, PluginHost
from showme_core.testing import ProviderPlugin, RecordingStorage, Tenant, client_for


@pytest.fixture
def showme_settings(showme_settings: Settings) -> Settings:
    return showme_settings.model_copy(
        update={"plugins": ["pigeon"], "plugin_settings": {"pigeon": {"fail_numbers": []}}}
    )


async def test_third_party_plugin_sends_sms_through_its_entry_point(
    make_tenant: Any, showme: ShowMe
) -> None:
    assert showme.plugins.active == ["pigeon"]
    assert set(showme.sms_providers) == {"outbox", "pigeon"}
    tenant: Tenant = await make_tenant(sms_providers=["pigeon"])
    answer = await tenant.client.post("/api/v1/invites", json={"phone": "+32470123456"})
    assert answer.status_code == 201
    await showme.drain()
    assert LOFT[-1].invite_id == answer.json()["id"]
    assert answer.json()["link"] in LOFT[-1].body
    invite = (await tenant.client.get(f"/api/v1/invites/{answer.json()['id']}")).json()
    assert invite["sms"]["provider"] == "pigeon"
    assert invite["sms"]["status"] == "sent"
    # showme_on_event saw the committed events, in order.
    assert {"invite.created", "sms.status"} <= set(showme_sms_pigeon.SEEN["events"])


async def test_plugin_routes_and_page_extras(showme_client: httpx.AsyncClient) -> None:
    loft = await showme_client.get("/plugins/pigeon/loft")
    assert loft.status_code == 200
    assert "messages" in loft.json()
    console = (await showme_client.get("/api/v1/console/extras")).json()
    assert console == {"scripts": ["/plugins/pigeon/pigeon.js"], "stylesheets": []}
    caller = (await showme_client.get("/api/v1/caller/extras")).json()
    assert caller == {"scripts": [], "stylesheets": ["/plugins/pigeon/pigeon.css"]}
    script = await showme_client.get("/plugins/pigeon/pigeon.js")
    assert script.headers["content-type"].startswith("text/javascript")


async def test_startup_and_shutdown_hooks_fire(showme_settings: Settings) -> None:
    before = dict(showme_sms_pigeon.SEEN)
    app = create_app(showme_settings)
    await app.state.showme.start()
    assert showme_sms_pigeon.SEEN["started"] == before["started"] + 1
    await app.state.showme.stop()
    assert showme_sms_pigeon.SEEN["stopped"] == before["stopped"] + 1


def test_installed_but_not_allowed_stays_inactive(tmp_path: Any) -> None:
    host = PluginHost(Settings(data_dir=tmp_path))
    assert host.active == []
    [pigeon] = [p for p in host.installed() if p.name == "pigeon"]
    assert not pigeon.active
    assert pigeon.distribution == "showme-sms-pigeon"


async def test_inactive_plugin_contributes_nothing(tmp_path: Any, showme_database_url: str) -> None:
    from showme_core.testing import settings_for_tests

    app = create_app(settings_for_tests(tmp_path, showme_database_url))
    assert "pigeon" not in app.state.showme.sms_providers
    async with client_for(app) as client:
        assert (await client.get("/plugins/pigeon/loft")).status_code == 404
        assert (await client.get("/api/v1/console/extras")).json()["scripts"] == []


def test_unknown_plugin_in_allow_list_fails_at_start(tmp_path: Any) -> None:
    with pytest.raises(PluginError, match="not installed"):
        PluginHost(Settings(data_dir=tmp_path, plugins=["pigeon", "no-such-plugin"]))


def test_misspelt_hook_fails_at_start(tmp_path: Any) -> None:
    class Misspelt:
        @hookimpl
        def showme_register_sms_provider(self) -> None:  # missing the final "s"
            pass

    with pytest.raises(Exception, match="unknown hook"):
        PluginHost(Settings(data_dir=tmp_path), defaults=[Misspelt()])


def test_two_providers_with_one_name_are_refused(tmp_path: Any) -> None:
    from showme_core.testing import RecordingSmsProvider

    host = PluginHost(
        Settings(data_dir=tmp_path),
        defaults=[ProviderPlugin(sms=[RecordingSmsProvider("x"), RecordingSmsProvider("x")])],
    )
    with pytest.raises(PluginError, match="two SMS providers"):
        host.sms_providers()


def test_foreign_page_extras_are_refused(tmp_path: Any) -> None:
    from showme_core.providers import PageExtras

    class Foreign:
        @hookimpl
        def showme_console_extras(self) -> PageExtras:
            return PageExtras(scripts=["https://cdn.example/x.js"])

    host = PluginHost(Settings(data_dir=tmp_path), defaults=[Foreign()])
    with pytest.raises(PluginError, match="same-origin"):
        host.console_extras(None)  # type: ignore[arg-type]


async def test_failing_on_event_does_not_break_the_request(
    tmp_path: Any, showme_database_url: str, make_tenant: Any
) -> None:
    class Broken:
        @hookimpl
        async def showme_on_event(self, event: Any) -> None:
            raise RuntimeError("plugin bug")

    from showme_core.testing import settings_for_tests

    app = create_app(settings_for_tests(tmp_path, showme_database_url), plugins=[Broken()])
    await app.state.showme.start()
    try:
        async with client_for(app) as client:
            # An anonymous call that commits no event still works; the hook runs on events only.
            assert (await client.get("/healthz")).status_code == 200
        showme: ShowMe = app.state.showme
        async with showme.transaction() as tx:
            from showme_core.organisations import create_organisation

            org = await create_organisation(
                tx.conn, slug=f"broken-{id(tx) % 100000}", name="x", default_region="BE"
            )
            await tx.event(org.id, "credits.changed", {"credits": 0})
        await showme.drain()
        assert "showme_on_event failed" in showme.settings.log_file.read_text()  # type: ignore[union-attr]
    finally:
        await app.state.showme.stop()


async def test_storage_backends_register_and_the_configured_one_is_used(
    tmp_path: Any, showme_database_url: str
) -> None:
    from showme_core.testing import settings_for_tests

    memory = RecordingStorage("memory")

    class MemoryStoragePlugin:
        @hookimpl
        def showme_register_storage_backends(self, register: Any, config: Settings) -> None:
            assert config.settings_for("core") == {"storage": "memory"}
            register(memory)

    settings = settings_for_tests(
        tmp_path, showme_database_url, plugin_settings={"core": {"storage": "memory"}}
    )
    app = create_app(settings, plugins=[MemoryStoragePlugin()])
    showme: ShowMe = app.state.showme
    assert set(showme.storage_backends) == {"filesystem", "memory"}
    assert showme.storage is memory
    stored = await showme.storage.put("a/b.jpg", b"bytes")
    assert stored.size == 5 and memory.calls == [("put", "a/b.jpg")]
    await showme.db.dispose()


async def test_filesystem_storage_is_durable_and_safe(tmp_path: Any) -> None:
    storage = FilesystemStorage(tmp_path / "media")
    stored = await storage.put("org/invite/one.jpg", b"\xff\xd8payload")
    assert stored.sha256 == __import__("hashlib").sha256(b"\xff\xd8payload").hexdigest()
    assert await storage.exists("org/invite/one.jpg")
    assert b"".join([c async for c in storage.open("org/invite/one.jpg")]) == b"\xff\xd8payload"
    assert not [
        p for p in (tmp_path / "media" / "org" / "invite").iterdir() if p.name.startswith(".")
    ]
    for bad in ("../escape", "/abs", "a/../b", ""):
        with pytest.raises(ValueError, match="invalid storage key"):
            await storage.put(bad, b"x")
    with pytest.raises(KeyError):
        [c async for c in storage.open("org/missing.jpg")]
    await storage.delete("org/invite/one.jpg")
    assert not await storage.exists("org/invite/one.jpg")
    await asyncio.sleep(0)


def test_a_settings_block_for_a_plugin_not_loaded_stops_the_start(tmp_path: Any) -> None:
    from showme_core.app import ShowMe
    from showme_core.plugins import PluginError
    from showme_core.testing import settings_for_tests

    settings = settings_for_tests(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        plugin_settings={"sms_twilo": {"account_sid": "AC1"}},  # misspelt, and not loaded
    )
    with pytest.raises(PluginError, match="sms_twilo"):
        ShowMe(settings)
    loaded = settings.model_copy(
        update={"plugins": ["pigeon"], "plugin_settings": {"pigeon": {}, "core": {}}}
    )
    ShowMe(loaded)  # the loaded plugin's block, and the core's, are fine


async def test_an_organisation_block_for_a_plugin_not_loaded_stops_the_start(
    showme_database_url: str, tmp_path: Any
) -> None:
    from showme_core.app import ShowMe
    from showme_core.organisations import configure_plugin, create_organisation
    from showme_core.plugins import PluginError
    from showme_core.testing import settings_for_tests, unique

    with_pigeon = settings_for_tests(tmp_path, showme_database_url, plugins=["pigeon"])
    showme = ShowMe(with_pigeon)
    try:
        async with showme.transaction() as tx:
            org = await create_organisation(
                tx.conn, slug=unique("cfg"), name="c", default_region="BE"
            )
            await configure_plugin(tx.conn, org.id, "pigeon", {"fail_numbers": ["+32470000000"]})
        await showme.start()
        assert await showme.organisation_settings(org.id, "pigeon") == {
            "fail_numbers": ["+32470000000"]
        }
        await showme.stop()
        without = ShowMe(settings_for_tests(tmp_path, showme_database_url))
        with pytest.raises(PluginError, match="has settings for pigeon"):
            await without.start()
        await without.stop()
        async with showme.transaction() as tx:
            await configure_plugin(tx.conn, org.id, "pigeon", None)
    finally:
        await showme.db.dispose()
