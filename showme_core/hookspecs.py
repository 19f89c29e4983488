"""Every hook a ShowMe plugin can implement.

Hooks *register* providers or contribute small things (routes, page extras, event reactions); they
never do the core's work. Implementations may be plain functions or ``async def``: the core awaits
what needs awaiting (see :class:`showme_core.plugins.PluginHost`). An implementation may accept
fewer arguments than the spec names. Each hook is documented in ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from showme_core.app import ShowMe
    from showme_core.config import Settings
    from showme_core.events import Event
    from showme_core.providers import IceProvider, PageExtras, SmsProvider, StorageBackend

PROJECT = "showme"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def showme_register_sms_providers(
    register: Callable[[SmsProvider], None], config: Settings
) -> None:
    """Register SMS providers.

    :param register: call it once per provider instance; the instance's ``name`` is what an
        organisation's ``sms_providers`` chain refers to. Two providers with one name is an error.
    :param config: the service settings; ``config.settings_for(DOMAIN)`` is the plugin's own block.
    :return: nothing; the return value is ignored.

    Fires once, when the service is built, before it accepts requests.
    """


@hookspec
def showme_register_ice_providers(
    register: Callable[[IceProvider], None], config: Settings
) -> None:
    """Register ICE (STUN/TURN) providers for live video.

    :param register: call it once per provider instance; the service uses the provider named by
        the ``ice`` core setting (``static`` by default).
    :param config: the service settings; ``config.settings_for(DOMAIN)`` is the plugin's own block.
    :return: nothing; the return value is ignored.

    Fires once, when the service is built.
    """


@hookspec
def showme_register_storage_backends(
    register: Callable[[StorageBackend], None], config: Settings
) -> None:
    """Register media storage backends.

    :param register: call it once per backend instance; the service uses the backend named by
        the ``storage`` plugin setting (``filesystem`` by default).
    :param config: the service settings.
    :return: nothing; the return value is ignored.

    Fires once, when the service is built.
    """


@hookspec
def showme_routes(showme: ShowMe) -> list[BaseRoute] | None:
    """Contribute HTTP or WebSocket routes.

    :param showme: the service, for its store, settings and providers.
    :return: Starlette routes to mount beside the core's, or ``None``. Paths must not collide
        with the core's (``/api/v1/...`` core paths win); plugins should live under
        ``/plugins/<name>/`` or ``/api/v1/<name>/``.

    Fires once, when the service is built.
    """


@hookspec
def showme_startup(showme: ShowMe) -> Awaitable[None] | None:
    """Run when the service starts, after the store is open and before the first request.

    :param showme: the service.
    :return: ``None``, or an awaitable the core awaits. An exception stops the start-up.

    Fires once per process start.
    """


@hookspec
def showme_shutdown(showme: ShowMe) -> Awaitable[None] | None:
    """Run when the service stops, after it stopped accepting requests.

    :param showme: the service.
    :return: ``None``, or an awaitable the core awaits. Exceptions are logged, not raised.

    Fires once per process stop.
    """


@hookspec
def showme_on_event(showme: ShowMe, event: Event) -> Awaitable[None] | None:
    """React to an event after it has been committed to the store.

    :param showme: the service.
    :param event: the committed event (``organisation_id``, ``id``, ``type``, ``invite_id``,
        ``data``).
    :return: ``None``, or an awaitable the core awaits. Exceptions are logged and do not reach the
        request that caused the event; a slow implementation delays only other ``showme_on_event``
        implementations, never the event feed.

    Fires for every event, on the instance that committed it.
    """


@hookspec
def showme_console_extras(showme: ShowMe) -> PageExtras | None:
    """Add scripts and stylesheets to the dispatcher console.

    :param showme: the service.
    :return: a :class:`~showme_core.providers.PageExtras` of same-origin URLs, or ``None``.

    Fires when the console asks for its extras (once per console load).
    """


@hookspec
def showme_caller_page_extras(showme: ShowMe) -> PageExtras | None:
    """Add scripts and stylesheets to the caller's page.

    :param showme: the service.
    :return: a :class:`~showme_core.providers.PageExtras` of same-origin URLs, or ``None``. Keep
        them small: the caller page has a 20 KB budget.

    Fires when the caller page asks for its extras (once per page load).
    """
