"""The reference CAD adapter: signed webhooks (Standard Webhooks) to each organisation's CAD.

Activate with ``plugins = ["cad_webhook"]`` (its settings in ``[plugin_settings.cad_webhook]``,
see README.md and ``docs/cad-webhook.md``). This module holds the hook implementations only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from showme_cad_webhook.adapter import adapter_for, adapter_of
from showme_cad_webhook.cli import COMMAND
from showme_cad_webhook.const import DOMAIN
from showme_cad_webhook.routes import routes
from showme_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from showme_core.app import ShowMe
    from showme_core.config import Settings
    from showme_core.providers import CadAdapter, CliCommand

NAME = DOMAIN

__all__ = [
    "NAME",
    "showme_register_cad_adapters",
    "showme_register_commands",
    "showme_routes",
    "showme_shutdown",
    "showme_startup",
]


@hookimpl
def showme_register_cad_adapters(register: Callable[[CadAdapter], None], config: Settings) -> None:
    register(adapter_for(config))


@hookimpl
def showme_register_commands(register: Callable[[CliCommand], None]) -> None:
    register(COMMAND)


@hookimpl
def showme_routes(showme: ShowMe) -> list[BaseRoute]:
    return list(routes(showme))


@hookimpl
async def showme_startup(showme: ShowMe) -> None:
    await adapter_of(showme).start_sending(showme)


@hookimpl
async def showme_shutdown(showme: ShowMe) -> None:
    await adapter_of(showme).stop_sending()
