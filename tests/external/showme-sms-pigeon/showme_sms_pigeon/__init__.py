"""Hook implementations of the pigeon test plugin."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from showme_core.hookspecs import hookimpl
from showme_core.providers import CliCommand, PageExtras
from showme_sms_pigeon.journal import PigeonJournal
from showme_sms_pigeon.provider import LOFT, PigeonSmsProvider

DOMAIN = "pigeon"
SEEN: dict[str, Any] = {"events": [], "started": 0, "stopped": 0}


@hookimpl
def showme_register_sms_providers(register: Callable[[Any], None], config: Any) -> None:
    settings = config.settings_for(DOMAIN)
    register(PigeonSmsProvider(fail_numbers=set(settings.get("fail_numbers", []))))


@hookimpl
def showme_register_event_consumers(register: Callable[[Any], None], config: Any) -> None:
    settings = config.settings_for(DOMAIN)
    if settings.get("journal"):
        register(
            PigeonJournal(
                Path(settings["journal"]),
                set(settings.get("fail_first", [])),
                float(settings.get("delay", 0.0)),
            )
        )


@hookimpl
def showme_routes() -> list[Route]:
    async def loft(_request: Request) -> Response:
        return JSONResponse({"messages": len(LOFT)})

    async def script(_request: Request) -> Response:
        return Response("export const pigeon = true;\n", media_type="text/javascript")

    return [
        Route("/plugins/pigeon/loft", loft),
        Route("/plugins/pigeon/pigeon.js", script),
    ]


@hookimpl
async def showme_startup() -> None:
    SEEN["started"] += 1


@hookimpl
async def showme_shutdown() -> None:
    SEEN["stopped"] += 1


@hookimpl
async def showme_on_event(event: Any) -> None:
    SEEN["events"].append(event.type)


@hookimpl
def showme_console_extras() -> PageExtras:
    return PageExtras(scripts=["/plugins/pigeon/pigeon.js"])


@hookimpl
def showme_caller_page_extras() -> PageExtras:
    return PageExtras(stylesheets=["/plugins/pigeon/pigeon.css"])


async def _print_settings(showme: Any, args: argparse.Namespace) -> int:
    settings = await showme.organisation_settings(args.org_id, DOMAIN)
    print(json.dumps(settings, sort_keys=True))
    return 0


def _configure_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("org_id", help="organisation id")


@hookimpl
def showme_register_commands(register: Callable[[CliCommand], None], config: Any) -> None:
    register(
        CliCommand(
            name="pigeon-settings",
            help="print the pigeon settings an organisation sees",
            configure=_configure_settings,
            run=_print_settings,
        )
    )
