"""``showme webhooks ...``: endpoints and deliveries from the command line.

The command line records (endpoints, replays) in the store; the running service sends: its
senders find a new endpoint and replayed deliveries within ``poll_seconds``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from showme_cad_webhook.adapter import WebhookAdapter, adapter_of
from showme_cad_webhook.deliveries import STATES, parse_state
from showme_cad_webhook.times import iso, parse_iso
from showme_core.errors import InvalidInput
from showme_core.providers import CliCommand

if TYPE_CHECKING:
    from showme_cad_webhook.endpoints import Endpoint
    from showme_core.app import ShowMe

ACTOR = "cli"


def _endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="organisation slug")
    parser.add_argument("--endpoint", required=True, help="endpoint id")


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``webhooks`` subcommands and their arguments."""
    sub = parser.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")

    create = sub.add_parser("create", help="add an endpoint (its secret is printed once)")
    create.add_argument("--org", required=True, help="organisation slug")
    create.add_argument("--url", required=True, help="https URL of the receiver")
    create.add_argument(
        "--event",
        action="append",
        dest="events",
        metavar="TYPE",
        help="an event type, 'prefix.*' or '*' (repeat; default: every event)",
    )
    create.add_argument("--no-events", action="store_true", help="no events (the EIDO alone)")
    create.add_argument("--include-phone", action="store_true", help="send the caller's number")
    create.add_argument("--include-locations", action="store_true", help="send locations")
    create.add_argument("--push-eido", action="store_true", help="push the incident's EIDO")
    create.add_argument("--description", default="")

    listing = sub.add_parser("list", help="an organisation's endpoints")
    listing.add_argument("--org", required=True, help="organisation slug")

    for name, help_text in (
        ("disable", "stop sending to an endpoint (deliveries wait)"),
        ("enable", "send to an endpoint again"),
        ("delete", "remove an endpoint, its queue and its history"),
    ):
        _endpoint_arguments(sub.add_parser(name, help=help_text))

    rotate = sub.add_parser("rotate", help="a new secret (printed once); the old keeps signing")
    _endpoint_arguments(rotate)
    rotate.add_argument(
        "--overlap-seconds", type=float, help="how long the old secret keeps signing"
    )

    deliveries = sub.add_parser("deliveries", help="an endpoint's deliveries and attempts")
    _endpoint_arguments(deliveries)
    deliveries.add_argument("--state", choices=STATES)
    deliveries.add_argument("--limit", type=int, default=20)

    replay = sub.add_parser("replay", help="send deliveries again")
    _endpoint_arguments(replay)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--delivery", help="one delivery's id")
    which.add_argument("--since", help="every delivery recorded since this ISO 8601 time")


def _describe(endpoint: Endpoint) -> str:
    flags = [
        "active" if endpoint.active else "DISABLED",
        *(["phone"] if endpoint.include_phone else []),
        *(["locations"] if endpoint.include_locations else []),
        *(["eido"] if endpoint.push_eido else []),
    ]
    events = ",".join(endpoint.event_types) or "(none)"
    return f"{endpoint.id}  {endpoint.url}  events={events}  {' '.join(flags)}"


async def _create(adapter: WebhookAdapter, args: argparse.Namespace) -> int:
    events: list[str] | None = [] if args.no_events else args.events
    endpoint, secret = await adapter.endpoints.create(
        args.org,
        url=args.url,
        description=args.description,
        event_types=events,
        include_phone=args.include_phone,
        include_locations=args.include_locations,
        push_eido=args.push_eido,
        actor=ACTOR,
    )
    print(f"endpoint {_describe(endpoint)}")
    print("Signing secret; store it now, it is not shown again:", file=sys.stderr)
    print(secret)
    return 0


async def _list(adapter: WebhookAdapter, args: argparse.Namespace) -> int:
    for endpoint in await adapter.endpoints.every(args.org):
        print(_describe(endpoint))
    return 0


async def _switch(adapter: WebhookAdapter, args: argparse.Namespace) -> int:
    active = args.webhooks_command == "enable"
    endpoint = await adapter.endpoints.change(args.org, args.endpoint, actor=ACTOR, active=active)
    print(f"endpoint {_describe(endpoint)}")
    return 0


async def _delete(adapter: WebhookAdapter, args: argparse.Namespace) -> int:
    await adapter.endpoints.delete(args.org, args.endpoint, actor=ACTOR)
    print(f"endpoint {args.endpoint} deleted")
    return 0


async def _rotate(adapter: WebhookAdapter, args: argparse.Namespace) -> int:
    endpoint, secret = await adapter.endpoints.rotate(
        args.org, args.endpoint, args.overlap_seconds, actor=ACTOR
    )
    signing = endpoint.live_secrets(adapter.showme.now())
    until = [iso(s.expires_at) or "" for s in signing if s.expires_at is not None]
    print(f"endpoint {endpoint.id}: new secret; the previous ones sign until {', '.join(until)}")
    print("Signing secret; store it now, it is not shown again:", file=sys.stderr)
    print(secret)
    return 0


def _show_delivery(delivery: dict[str, Any]) -> None:
    print(
        f"{delivery['id']}  {delivery['type']}  {delivery['state']}  "
        f"invite={delivery['invite_id'] or '-'}  attempts={delivery['attempt_count']}  "
        f"created={delivery['created_at']}"
    )
    for attempt in delivery["attempts"]:
        print(
            f"    {attempt['at']}  status={attempt['status_code'] or '-'}  "
            f"{attempt['duration_ms']} ms  {attempt['error'] or 'ok'}"
        )


async def _deliveries(adapter: WebhookAdapter, args: argparse.Namespace) -> int:
    endpoint = await adapter.endpoints.get(args.org, args.endpoint)
    found = await adapter.deliveries.recent(
        endpoint.id, limit=max(1, args.limit), state=parse_state(args.state)
    )
    for delivery in found:
        _show_delivery(delivery.to_json())
    return 0


async def _replay(adapter: WebhookAdapter, args: argparse.Namespace) -> int:
    endpoint = await adapter.endpoints.get(args.org, args.endpoint)
    if args.delivery:
        await adapter.deliveries.replay(endpoint.id, args.delivery)
        print(f"delivery {args.delivery} queued again")
        return 0
    try:
        since = parse_iso(args.since)
    except ValueError:
        raise InvalidInput("--since must be an ISO 8601 time") from None
    replayed = await adapter.deliveries.replay_since(endpoint.id, since)
    print(f"{len(replayed)} deliveries queued again")
    return 0


HANDLERS = {
    "create": _create,
    "list": _list,
    "disable": _switch,
    "enable": _switch,
    "delete": _delete,
    "rotate": _rotate,
    "deliveries": _deliveries,
    "replay": _replay,
}


async def run(showme: ShowMe, args: argparse.Namespace) -> int:
    """Run one ``webhooks`` subcommand against the store."""
    adapter = adapter_of(showme)
    # Operators name organisations by slug, as in every other command.
    args.org = (await showme.organisation_by_slug(args.org)).id
    return await HANDLERS[args.webhooks_command](adapter, args)


COMMAND = CliCommand(
    name="webhooks",
    help="CAD webhook endpoints and deliveries (cad_webhook adapter)",
    configure=configure,
    run=run,
)
