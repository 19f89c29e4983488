"""The plugin host: owns one pluggy manager per service and is the only code that calls hooks."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
import structlog

from showme_core import hookspecs
from showme_core.providers import (
    CadAdapter,
    CliCommand,
    EventConsumer,
    IceProvider,
    InviteDraft,
    InviteRefused,
    PageExtras,
    PictureCandidate,
    PictureRefused,
    Refused,
    SmsProvider,
    StorageBackend,
    StreamChange,
)

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from showme_core.app import ShowMe
    from showme_core.auth import Principal
    from showme_core.config import Settings
    from showme_core.events import Event
    from showme_core.invites import Invite
    from showme_core.media import Media

ENTRY_POINT_GROUP = "showme"
log = structlog.get_logger("showme.plugins")

# How long a hook that decides (amend an invite, check a picture) may take before the invite or
# picture is refused as if the plugin had failed; and how long one that is told may take.
HOOK_TIMEOUT_SECONDS = 5.0
TOLD_TIMEOUT_SECONDS = 10.0

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

    def event_consumers(self) -> dict[str, EventConsumer]:
        """Durable consumers and CAD adapters, by name (one name space for both)."""
        consumers = self._collect(
            self.pm.hook.showme_register_event_consumers,
            EventConsumer,  # type: ignore[type-abstract]
            "event consumer",
        )
        adapters = self.cad_adapters()
        both = set(consumers) & set(adapters)
        if both:
            raise PluginError(f"an event consumer and a CAD adapter are both named {both}")
        return {**consumers, **adapters}

    def cad_adapters(self) -> dict[str, CadAdapter]:
        return self._collect(
            self.pm.hook.showme_register_cad_adapters,
            CadAdapter,  # type: ignore[type-abstract]
            "CAD adapter",
        )

    def commands(self) -> list[CliCommand]:
        found: list[CliCommand] = []

        def register(command: CliCommand) -> None:
            if not isinstance(command, CliCommand):
                raise PluginError(f"{command!r} is not a CliCommand")
            found.append(command)

        self.pm.hook.showme_register_commands(register=register, config=self.settings)
        return found

    def setting_blocks(self) -> set[str]:
        """The names a ``plugin_settings`` block may have: ``core``, the built-in providers'
        (their module's ``NAME``) and the active plugins'."""
        names = {"core", *self.active}
        for plugin in self.pm.get_plugins():
            name = getattr(plugin, "NAME", None)
            if isinstance(name, str) and str(self.pm.get_name(plugin)).startswith("builtin:"):
                names.add(name)
        return names

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
        for impl in _in_call_order(self.pm.hook.showme_shutdown):
            try:
                await _call(impl, TOLD_TIMEOUT_SECONDS, showme=showme)
            except Exception:
                log.exception("plugin shutdown failed", plugin=impl.plugin_name)

    async def on_event(self, showme: ShowMe, event: Event) -> None:
        # Called per implementation so that one failing plugin does not hide the event from others.
        for impl in _in_call_order(self.pm.hook.showme_on_event):
            try:
                await _call(impl, TOLD_TIMEOUT_SECONDS, showme=showme, event=event)
            except Exception:
                log.exception("showme_on_event failed", plugin=impl.plugin_name, type=event.type)

    # -- invites, pictures and streams ---------------------------------------------------------

    async def amend_invite(self, showme: ShowMe, draft: InviteDraft, principal: Principal) -> None:
        """Let each plugin amend the draft in turn; the first refusal stops the invite."""
        await _decide(
            self.pm.hook.showme_amend_invite,
            InviteRefused,
            "The invite could not be checked by an integration; try again.",
            showme=showme,
            draft=draft,
            principal=principal,
        )

    async def check_picture(
        self, showme: ShowMe, invite: Invite, picture: PictureCandidate
    ) -> None:
        """Ask each plugin in turn; a refusal (or a failing checker) stops the picture."""
        await _decide(
            self.pm.hook.showme_check_picture,
            PictureRefused,
            "The picture could not be checked right now. Try again in a moment.",
            showme=showme,
            invite=invite,
            picture=picture,
        )

    async def picture_stored(self, showme: ShowMe, invite: Invite, media: Media) -> None:
        for impl in _in_call_order(self.pm.hook.showme_on_picture_stored):
            try:
                await _call(impl, TOLD_TIMEOUT_SECONDS, showme=showme, invite=invite, media=media)
            except Exception:
                log.exception("showme_on_picture_stored failed", plugin=impl.plugin_name)

    async def stream_changed(self, showme: ShowMe, invite: Invite, stream: StreamChange) -> None:
        for impl in _in_call_order(self.pm.hook.showme_on_stream):
            try:
                await _call(impl, TOLD_TIMEOUT_SECONDS, showme=showme, invite=invite, stream=stream)
            except Exception:
                log.exception("showme_on_stream failed", plugin=impl.plugin_name)

    # -- page extras ---------------------------------------------------------------------------

    def console_extras(self, showme: ShowMe) -> PageExtras:
        return _merge(self.pm.hook.showme_console_extras(showme=showme))

    def caller_page_extras(self, showme: ShowMe) -> PageExtras:
        return _merge(self.pm.hook.showme_caller_page_extras(showme=showme))


def _plugin_name(plugin: object) -> str:
    name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin):x}"
    return str(name).rsplit(".", 1)[-1]


async def _decide(hook: Any, refused: type[Refused], failed: str, **kwargs: Any) -> None:
    """Ask each implementation of a hook that decides, in turn: its refusal stops the flow, and
    so does its failure or silence past ``HOOK_TIMEOUT_SECONDS`` (logged, with ``failed`` as the
    reason), since a checker that cannot answer must not let things through."""
    for impl in _in_call_order(hook):
        try:
            await _call(impl, HOOK_TIMEOUT_SECONDS, **kwargs)
        except refused:
            raise
        except Exception as exc:
            log.exception(f"{hook.name} failed", plugin=impl.plugin_name)
            raise refused(failed) from exc


def _in_call_order(hook: Any) -> list[pluggy.HookImpl]:
    """A hook's implementations in the order pluggy itself calls them (``tryfirst`` first):
    ``get_hookimpls`` lists them the other way round."""
    return list(reversed(hook.get_hookimpls()))


async def _call(impl: pluggy.HookImpl, timeout: float, **kwargs: Any) -> Any:
    """Call one implementation with the arguments it accepts, awaiting it if it is async, for
    at most ``timeout`` seconds (``TimeoutError`` after): a plugin that hangs must not hold an
    invite, an upload or a live session with it."""
    result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
    if inspect.isawaitable(result):
        async with asyncio.timeout(timeout):  # not wait_for: see consumers._woken
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
