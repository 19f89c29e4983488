"""The service object and the ASGI app factory. The factory wires; domain modules do the work."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware

from showme_core import event_types
from showme_core.accounts import Passwords
from showme_core.auth import SessionCookies
from showme_core.config import Settings, load_settings
from showme_core.consumers import Consumers
from showme_core.defaults import DEFAULT_PLUGINS
from showme_core.errors import NotConfigured
from showme_core.events import Event, LocalBus, append_event
from showme_core.feeds import Feeds
from showme_core.logs import configure_logging
from showme_core.metrics import Metrics
from showme_core.plugin_state import PluginState
from showme_core.plugins import PluginError, PluginHost
from showme_core.ratelimit import RateLimiter
from showme_core.signaling import Hub
from showme_core.store import Database
from showme_core.surface import ServiceSurface
from showme_core.uploads import PixelBudget, UploadGate

log = structlog.get_logger("showme")
P = ParamSpec("P")
R = TypeVar("R")


class Transaction:
    """A write transaction that collects the events it appends, published after commit."""

    def __init__(self, conn: AsyncConnection, strict_events: bool = False) -> None:
        self.conn = conn
        self.events: list[Event] = []
        self._strict = strict_events

    async def event(
        self, organisation_id: str, type_: str, data: dict[str, Any], invite_id: str | None = None
    ) -> Event:
        """Append an event of the catalogue (``showme_core.event_types``) to this transaction."""
        event_types.check(type_, data, invite_id, strict=self._strict)
        event = await append_event(self.conn, organisation_id, type_, data, invite_id)
        self.events.append(event)
        return event


class ShowMe(ServiceSurface):
    """One service instance: settings, store, providers, bus and background work. Plugins may
    use what :data:`showme_core.surface.PUBLIC_SURFACE` lists of it, nothing else."""

    def __init__(self, settings: Settings, plugins: Iterable[object] = ()) -> None:
        self.settings = settings
        self.db = Database(settings.effective_database_url)
        self.plugins = PluginHost(settings, defaults=[*DEFAULT_PLUGINS, *plugins])
        unknown = set(settings.plugin_settings) - self.plugins.setting_blocks()
        if unknown:
            raise PluginError(
                f"plugin_settings has blocks for {', '.join(sorted(unknown))}, which no loaded "
                f"plugin reads (known: {', '.join(sorted(self.plugins.setting_blocks()))}); "
                "activate the plugin in 'plugins' or remove the block"
            )
        self._states: dict[str, PluginState] = {}
        self.sms_providers = self.plugins.sms_providers()
        self.storage_backends = self.plugins.storage_backends()
        storage_name = settings.settings_for("core").get("storage", "filesystem")
        if storage_name not in self.storage_backends:
            raise PluginError(f"storage backend {storage_name!r} is not registered")
        self.storage = self.storage_backends[storage_name]
        self.ice_providers = self.plugins.ice_providers()
        ice_name = settings.settings_for("core").get("ice", "static")
        if ice_name not in self.ice_providers:
            raise PluginError(f"ICE provider {ice_name!r} is not registered")
        self.ice = self.ice_providers[ice_name]
        self.hub = Hub(self)
        self.bus = LocalBus()
        self.metrics = Metrics()
        self.feeds = Feeds(self)
        self.consumers = Consumers(self, self.plugins.event_consumers())
        self.passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        self.cookies = SessionCookies(settings.signing_keys(), settings.session_max_age_seconds)
        self._tasks: set[asyncio.Task[Any]] = set()
        # Picture decoding runs here, off the event loop (Pillow releases the GIL while it works).
        self._cpu = ThreadPoolExecutor(
            max_workers=settings.image_workers or os.cpu_count() or 2,
            thread_name_prefix="showme-imaging",
        )
        self._retention: asyncio.Task[None] | None = None
        self.rate_limits = RateLimiter()
        self.uploads = UploadGate(
            settings.max_uploads_per_invite,
            settings.max_uploads_per_organisation,
            settings.max_uploads_in_flight,
        )
        self.decoding = PixelBudget(settings.max_decoding_pixels)

    async def run_cpu(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run CPU-bound work (picture decoding) in the service's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._cpu, functools.partial(func, *args, **kwargs))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.db.transaction() as conn:
            tx = Transaction(conn, self.settings.strict_events)
            yield tx
        for event in tx.events:
            self.published(event)

    def published(self, event: Event) -> None:
        """An event is committed: wake feeds, count it, and let plugins react in the background."""
        self.bus.publish(event.organisation_id)
        if event.type == "invite.opened":
            self.metrics.invites_opened.inc()
        elif event.type == "invite.created":
            self.metrics.invites_created.labels(
                event.data["invite"]["created_by"].split(":")[0]
            ).inc()
        elif event.type == "invite.ended" and event.invite_id:
            self.spawn(self.hub.end(event.invite_id), name="end-signaling")
        elif event.type == "invite.resent" and event.invite_id:
            # The old link is dead: its socket goes now, not at its next message.
            self.spawn(self.hub.relinked_invite(event.invite_id), name="relink-signaling")
        elif event.type == "sms.status":
            sms = event.data["sms"]
            self.metrics.sms_status.labels(sms["provider"] or "none", sms["status"]).inc()
        self.spawn(self.plugins.on_event(self, event), name="on-event")

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run background work that must finish before shutdown and whose errors are logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", task=task.get_name(), exc_info=task.exception())

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for background work (SMS sends, plugin reactions) to finish."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=remaining)

    def public_base(self) -> str:
        """Where callers and SMS providers reach this service: ``public_url``, and never what a
        request says its host is (anyone could make the PSAP text a link to another domain)."""
        if self.settings.public_url is None:
            raise NotConfigured(
                "ShowMe cannot make caller links: its public_url is not set. Ask the operator to "
                "set it to the address callers reach.",
                code="public_url_not_set",
            )
        return self.settings.public_url

    async def start(self) -> None:
        from showme_core.sweeps import sweep_loop

        await self.db.ping()
        await self._check_organisation_settings()
        await self.plugins.startup(self)
        self.feeds.start()
        self.consumers.start()
        if self.settings.retention_sweep_seconds > 0:
            self._retention = asyncio.get_running_loop().create_task(
                sweep_loop(self, self.settings.retention_sweep_seconds), name="sweep"
            )

    async def _check_organisation_settings(self) -> None:
        """An organisation's settings block for a plugin that is not loaded stops the start."""
        from showme_core.organisations import list_plugin_settings

        known = self.plugins.setting_blocks()
        async with self.db.read() as db:
            for slug, blocks in await list_plugin_settings(db):
                unknown = set(blocks) - known
                if unknown:
                    raise PluginError(
                        f"organisation {slug} has settings for {', '.join(sorted(unknown))}, "
                        "which no loaded plugin reads; activate it or clear them with "
                        f"'showme org configure --org {slug} --plugin NAME --clear'"
                    )

    async def stop(self) -> None:
        await self.hub.close_all()
        await self.consumers.stop()
        await self.feeds.stop()
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        await self.drain()
        await self.plugins.shutdown(self)
        await self.db.dispose()
        self._cpu.shutdown(wait=True)


def create_app(settings: Settings | None = None, plugins: Iterable[object] = ()) -> Starlette:
    """Build the ASGI app: one ShowMe service with its own plugin manager."""
    from showme_core.web.errors import EXCEPTION_HANDLERS
    from showme_core.web.middleware import RequestContext
    from showme_core.web.routes import build_routes

    settings = settings or load_settings()
    configure_logging(settings)
    showme = ShowMe(settings, plugins)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await showme.start()
        log.info("showme started", plugins=showme.plugins.active)
        try:
            yield
        finally:
            await showme.stop()

    app = Starlette(
        routes=build_routes(showme),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.showme = showme
    # Callers are often on weak networks: compress pages and JSON (the event feed is excluded).
    app.add_middleware(GZipMiddleware, minimum_size=500)
    app.add_middleware(RequestContext, showme=showme)
    return app
