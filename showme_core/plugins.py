"""The plugin host: owns one pluggy manager per service and is the only code that calls hooks."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
import structlog

from showme_core import hookspecs
from showme_core.providers import IceProvider, PageExtras, SmsProvider, StorageBackend

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from showme_core.app import ShowMe
    from showme_core.config import Settings
    from showme_core.events import Event

ENTRY_POINT_GROUP = "showme"
log = structlog.get_logger("showme.plugins")

T = TypeVar("T")


class PluginError(Exception):
    """A plugin cannot be loaded or misbehaves at registration."""


@dataclass(frozen=True)
class InstalledPlugin:
    name: str
    value: str
    distribution: str | None
    active: bool


def installed_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


class PluginHost:
    """Typed facade over the plugin manager: one method per hook."""

    def __init__(self, settings: Settings, defaults: Iterable[ModuleType | object] = ()) -> None:
        self.settings = settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        for plugin in defaults:
            self.pm.register(plugin, name=f"builtin:{_plugin_name(plugin)}")
        self.active: list[str] = []
        self._load_entry_points(settings.plugins)
        # A misspelt hook name in any plugin fails here, at start-up.
        self.pm.check_pending()

    def _load_entry_points(self, allowed: list[str]) -> None:
        available = {ep.name: ep for ep in installed_entry_points()}
        missing = [name for name in allowed if name not in available]
        if missing:
            raise PluginError(
                f"plugins {', '.join(missing)} are listed in 'plugins' but not installed "
                f"(installed: {', '.join(sorted(available)) or 'none'})"
            )
        for name in allowed:
            try:
                module = available[name].load()
            except Exception as exc:
                raise PluginError(f"plugin {name!r} failed to import: {exc}") from exc
            self.pm.register(module, name=name)
            self.active.append(name)

    def installed(self) -> list[InstalledPlugin]:
        return [
            InstalledPlugin(
                name=ep.name,
                value=ep.value,
                distribution=ep.dist.name if ep.dist else None,
                active=ep.name in self.active,
            )
            for ep in installed_entry_points()
        ]

    # -- registration hooks --------------------------------------------------------------------

    def sms_providers(self) -> dict[str, SmsProvider]:
        return self._collect(
            self.pm.hook.showme_register_sms_providers,
            SmsProvider,  # type: ignore[type-abstract]
            "SMS provider",
        )

    def ice_providers(self) -> dict[str, IceProvider]:
        return self._collect(
            self.pm.hook.showme_register_ice_providers,
            IceProvider,  # type: ignore[type-abstract]
            "ICE provider",
        )

    def storage_backends(self) -> dict[str, StorageBackend]:
        return self._collect(
            self.pm.hook.showme_register_storage_backends,
            StorageBackend,  # type: ignore[type-abstract]
            "storage backend",
        )

    def _collect(self, hook: Any, kind: type[T], label: str) -> dict[str, T]:
        found: dict[str, T] = {}

        def register(provider: T) -> None:
            if not isinstance(provider, kind):
                raise PluginError(f"{provider!r} is not a {label}")
            name = provider.name  # type: ignore[attr-defined]
            if name in found:
                raise PluginError(f"two {label}s are named {name!r}")
            found[name] = provider

        try:
            hook(register=register, config=self.settings)
        except (ValueError, TypeError, KeyError) as exc:
            # A plugin refusing its settings: one clear line, not a traceback.
            raise PluginError(f"a {label} refused its settings: {exc}") from exc
        return found

    def routes(self, showme: ShowMe) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for contributed in self.pm.hook.showme_routes(showme=showme):
            routes.extend(contributed or [])
        return routes

    # -- lifecycle and events ------------------------------------------------------------------

    async def startup(self, showme: ShowMe) -> None:
        for result in self.pm.hook.showme_startup(showme=showme):
            if inspect.isawaitable(result):
                await result

    async def shutdown(self, showme: ShowMe) -> None:
        for impl in self.pm.hook.showme_shutdown.get_hookimpls():
            try:
                await _call(impl, showme=showme)
            except Exception:
                log.exception("plugin shutdown failed", plugin=impl.plugin_name)

    async def on_event(self, showme: ShowMe, event: Event) -> None:
        # Called per implementation so that one failing plugin does not hide the event from others.
        for impl in self.pm.hook.showme_on_event.get_hookimpls():
            try:
                await _call(impl, showme=showme, event=event)
            except Exception:
                log.exception("showme_on_event failed", plugin=impl.plugin_name, type=event.type)

    # -- page extras ---------------------------------------------------------------------------

    def console_extras(self, showme: ShowMe) -> PageExtras:
        return _merge(self.pm.hook.showme_console_extras(showme=showme))

    def caller_page_extras(self, showme: ShowMe) -> PageExtras:
        return _merge(self.pm.hook.showme_caller_page_extras(showme=showme))


def _plugin_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin):x}"
    return str(name).rsplit(".", 1)[-1]


async def _call(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    """Call one implementation with the arguments it accepts, awaiting it if it is async."""
    result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
    if inspect.isawaitable(result):
        result = await result
    return result


def _merge(results: list[PageExtras | None]) -> PageExtras:
    scripts: list[str] = []
    stylesheets: list[str] = []
    for extras in results:
        if extras is None:
            continue
        for url in [*extras.scripts, *extras.stylesheets]:
            if not url.startswith("/") or url.startswith("//"):
                raise PluginError(f"page extra {url!r} must be a same-origin path")
        scripts.extend(extras.scripts)
        stylesheets.extend(extras.stylesheets)
    return PageExtras(scripts=scripts, stylesheets=stylesheets)
