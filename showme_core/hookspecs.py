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
    from showme_core.auth import Principal
    from showme_core.config import Settings
    from showme_core.events import Event
    from showme_core.invites import Invite
    from showme_core.media import Media
    from showme_core.providers import (
        CadAdapter,
        CliCommand,
        EventConsumer,
        IceProvider,
        InviteDraft,
        PageExtras,
        PictureCandidate,
        SmsProvider,
        StorageBackend,
        StreamChange,
    )

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

    Fires for every event, on the instance that committed it: best effort and unordered (a crash
    loses what was in flight; a slow reaction may end after the next event's). For ordered,
    at-least-once delivery register a durable consumer
    (:func:`showme_register_event_consumers`).
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


@hookspec
def showme_register_event_consumers(
    register: Callable[[EventConsumer], None], config: Settings
) -> None:
    """Register durable event consumers.

    :param register: call it once per consumer instance; its ``name`` names its cursors in the
        store, so keep it stable across releases (a new name starts afresh).
    :param config: the service settings.
    :return: nothing; the return value is ignored.

    Fires once, when the service is built. Each consumer then receives every organisation's
    events in commit order, at least once (:class:`~showme_core.providers.EventConsumer`).
    """


@hookspec
def showme_register_cad_adapters(register: Callable[[CadAdapter], None], config: Settings) -> None:
    """Register CAD adapters.

    :param register: call it once per adapter instance; its ``name`` must differ from every
        event consumer's and adapter's.
    :param config: the service settings.
    :return: nothing; the return value is ignored.

    Fires once, when the service is built. Adapters receive events as durable consumers do, are
    listed by ``showme plugins`` and checked by ``showme check``.
    """


@hookspec
def showme_amend_invite(
    showme: ShowMe, draft: InviteDraft, principal: Principal
) -> Awaitable[None] | None:
    """Amend an invite before it is created, or refuse it.

    :param showme: the service.
    :param draft: the invite about to be created; change its fields in place (stamp CAD data in
        ``labels``, resolve ``incident_id``). The core validates the result again.
    :param principal: who asks for it (``organisation_id``, ``actor``, ``kind``).
    :return: ``None``, or an awaitable the core awaits. Raise
        :class:`~showme_core.providers.InviteRefused` with a reason for the dispatcher to refuse
        it: nothing is created, charged or sent. Any other exception refuses it too, with a
        generic reason, and is logged.

    Fires for every invite about to be created (console, API, CAD adapters), before its rate
    limits are counted and its SMS is charged, in plugin registration order.
    """


@hookspec
def showme_check_picture(
    showme: ShowMe, invite: Invite, picture: PictureCandidate
) -> Awaitable[None] | None:
    """Refuse a caller's picture after it is decoded and before it is stored.

    :param showme: the service.
    :param invite: the invite the picture was sent for.
    :param picture: the clean picture that would be stored, with its hashes.
    :return: ``None``, or an awaitable the core awaits. Raise
        :class:`~showme_core.providers.PictureRefused` with a reason for the caller to refuse it
        (``422 picture_refused``): nothing is stored. Any other exception is logged and the
        picture is refused as well (a checker that fails must not let pictures through).

    Fires for every picture, still and snapshot, once decoded, in plugin registration order.
    """


@hookspec
def showme_on_picture_stored(
    showme: ShowMe, invite: Invite, media: Media
) -> Awaitable[None] | None:
    """Be told that a picture is stored.

    :param showme: the service.
    :param invite: the invite it was sent for.
    :param media: the stored picture (``id``, ``sha256``, ``location``, ...).
    :return: ``None``, or an awaitable the core awaits in the background. Exceptions are logged;
        the caller's answer does not wait for this hook.

    Fires once per stored picture, after its row is committed.
    """


@hookspec
def showme_on_stream(
    showme: ShowMe, invite: Invite, stream: StreamChange
) -> Awaitable[None] | None:
    """Be told when a live session starts, changes rung and ends, with its outcome.

    :param showme: the service.
    :param invite: the session's invite.
    :param stream: what changed (:class:`~showme_core.providers.StreamChange`).
    :return: ``None``, or an awaitable the core awaits in the background. Exceptions are logged.

    Fires after each change is committed as a ``stream.*`` event (at most once per kind per 10 s
    per session, like those events), on the instance that holds the session.
    """


@hookspec
def showme_register_commands(register: Callable[[CliCommand], None], config: Settings) -> None:
    """Add commands to the ``showme`` command line.

    :param register: call it once per :class:`~showme_core.providers.CliCommand`; its name must
        differ from the core's commands and other plugins'.
    :param config: the service settings (the command line's own ``--config`` included).
    :return: nothing; the return value is ignored.

    Fires once per ``showme`` invocation, while its arguments are parsed.
    """
