"""The ``showme`` command: serve, migrate and administer organisations, users, keys and credits."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from showme_core.config import ConfigError, Settings, load_settings
from showme_core.errors import ShowMeError
from showme_core.plugins import PluginError

DEMO_SLUG = "demo"
DEMO_EMAIL = "dispatcher@demo.invalid"


class CliError(Exception):
    """A failure the user can fix; printed without a traceback."""


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        Path(args.config) if args.config else None,
        data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None),
    )


def _run(coro_fn: Callable[[Any], Awaitable[int]], args: argparse.Namespace) -> int:
    from showme_core.app import ShowMe

    async def main() -> int:
        showme = ShowMe(_settings(args))
        try:
            return await coro_fn(showme)
        finally:
            await showme.drain()
            await showme.db.dispose()

    return asyncio.run(main())


# -- commands ----------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from showme_core.store.migrate import migrate

    settings = _settings(args)
    migrate(settings.effective_database_url)
    print("database is at the latest schema")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from showme_core.store.migrate import migrate
    from showme_core.web.server import serve

    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    settings = load_settings(
        Path(args.config) if args.config else None,
        data_dir=args.data_dir,
        database_url=args.database_url,
        **overrides,
    )
    if args.demo:
        settings = _demo_settings(settings)
        migrate(settings.effective_database_url)
        login = asyncio.run(_ensure_demo(settings))
        print(
            f"\nShowMe is starting.\n  Console:  {settings.public_url}/console/\n"
            f"  Sign in:  {login[0]}\n  Password: {login[1]}\n",
            flush=True,
        )
    make_private(settings)
    serve(settings)
    return 0


def _demo_settings(settings: Settings) -> Settings:
    """The demo answers where it listens: links and the Host check follow ``host`` and ``port``
    unless ``public_url`` says otherwise."""
    if settings.public_url is not None:
        return settings
    # Listening on every interface, the demo is still reached first at this machine's own.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)  # noqa: S104
    hosts = [*settings.allowed_hosts]
    if host in ("127.0.0.1", "::1"):
        hosts.append(f"localhost:{settings.port}")
    host = f"[{host}]" if ":" in host else host
    return settings.model_copy(
        update={"public_url": f"http://{host}:{settings.port}", "allowed_hosts": hosts}
    )


def make_private(settings: Settings) -> None:
    """The data directory and the files in it are the operator's alone: callers' pictures, the
    database (phone numbers, audit) and the logs. New files are private by the process umask
    (set in :func:`main`); this tightens what an earlier version created."""
    data_dir = settings.data_dir
    if data_dir.is_dir():
        data_dir.chmod(0o700)
    database = settings.effective_database_url.removeprefix("sqlite+aiosqlite:///")
    candidates = [Path(database + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    if settings.log_file is not None:
        candidates.append(settings.log_file)
    for path in candidates:
        if path.is_file() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


async def _ensure_demo(settings: Settings) -> tuple[str, str]:
    """Create the demo organisation and dispatcher once; remember the password in the data dir."""
    from showme_core.accounts import Role, create_user
    from showme_core.app import ShowMe
    from showme_core.errors import NotFound
    from showme_core.organisations import create_organisation, find_organisation

    secret_file = settings.data_dir / "demo-login.txt"
    showme = ShowMe(settings)
    try:
        async with showme.transaction() as tx:
            try:
                await find_organisation(tx.conn, DEMO_SLUG)
            except NotFound:
                org = await create_organisation(
                    tx.conn,
                    slug=DEMO_SLUG,
                    name="Demo PSAP",
                    default_region="BE",
                    initial_credits=100,
                )
                password = secrets.token_urlsafe(12)
                await create_user(
                    tx.conn,
                    showme.passwords,
                    organisation_id=org.id,
                    email=DEMO_EMAIL,
                    name="Demo Dispatcher",
                    role=Role.DISPATCHER,
                    password=password,
                )
                settings.data_dir.mkdir(parents=True, exist_ok=True)
                secret_file.write_text(password + "\n")
                secret_file.chmod(0o600)
    finally:
        await showme.db.dispose()
    password = secret_file.read_text().strip() if secret_file.exists() else "(see demo-login.txt)"
    return DEMO_EMAIL, password


def cmd_org_create(args: argparse.Namespace) -> int:
    from showme_core.organisations import create_organisation

    async def run(showme: Any) -> int:
        async with showme.transaction() as tx:
            org = await create_organisation(
                tx.conn,
                slug=args.slug,
                name=args.name,
                default_region=args.region,
                default_language=args.language,
                invite_ttl_seconds=args.invite_ttl,
                retention_seconds=args.retention,
                sms_providers=args.sms_provider or None,
                initial_credits=args.credits,
                video_audio=args.video_audio,
                video_facing=args.camera,
                allowed_countries=args.countries.split(",") if args.countries else None,
                sms_on_unclear=args.sms_on_unclear,
            )
        print(f"organisation {org.slug} created (id {org.id}, {org.sms_credits} SMS credits)")
        return 0

    return _run(run, args)


def cmd_org_configure(args: argparse.Namespace) -> int:
    """An organisation's settings block for one plugin (its keys override the service's)."""
    import json

    from showme_core.organisations import configure_plugin, find_organisation

    values: dict[str, Any] | None = None
    if not args.clear:
        try:
            values = json.loads(args.json)
        except ValueError as exc:
            raise CliError(f"--json is not JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise CliError("--json must be an object of settings")

    async def run(showme: Any) -> int:
        if values is not None and args.plugin not in showme.plugins.setting_blocks():
            raise CliError(
                f"no loaded plugin is named {args.plugin!r} (known: "
                f"{', '.join(sorted(showme.plugins.setting_blocks()))}); activate it first"
            )
        async with showme.transaction() as tx:
            org = await find_organisation(tx.conn, args.org)
            blocks = await configure_plugin(tx.conn, org.id, args.plugin, values)
        print(f"{org.slug}: settings for {', '.join(sorted(blocks)) or 'no plugin'}")
        return 0

    return _run(run, args)


def cmd_user_create(args: argparse.Namespace) -> int:
    from showme_core.accounts import Role, create_user
    from showme_core.organisations import find_organisation

    password = _read_password(args)

    async def run(showme: Any) -> int:
        async with showme.transaction() as tx:
            org = await find_organisation(tx.conn, args.org)
            user = await create_user(
                tx.conn,
                showme.passwords,
                organisation_id=org.id,
                email=args.email,
                name=args.name or args.email,
                role=Role(args.role),
                password=password,
            )
        print(f"user {user.email} ({user.role.value}) created in {org.slug}")
        return 0

    return _run(run, args)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if env := os.environ.get("SHOWME_NEW_PASSWORD"):
        return env
    if not sys.stdin.isatty():
        raise CliError("no password: use --password-stdin or SHOWME_NEW_PASSWORD")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CliError("the two passwords differ")
    return first


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from showme_core.accounts import create_api_key
    from showme_core.organisations import find_organisation

    async def run(showme: Any) -> int:
        async with showme.transaction() as tx:
            org = await find_organisation(tx.conn, args.org)
            key, secret = await create_api_key(
                tx.conn, organisation_id=org.id, name=args.name, scopes=args.scope or None
            )
        print(f"API key {key.id} for {org.slug}, scopes {', '.join(sorted(key.scopes))}.")
        print("Store it now; it is not shown again:", file=sys.stderr)
        print(secret)
        return 0

    return _run(run, args)


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from showme_core import audit
    from showme_core.accounts import revoke_api_key
    from showme_core.organisations import find_organisation

    async def run(showme: Any) -> int:
        async with showme.transaction() as tx:
            org = await find_organisation(tx.conn, args.org)
            if not await revoke_api_key(tx.conn, org.id, args.key_id):
                raise CliError(f"{org.slug} has no API key {args.key_id}")
            await audit.record(
                tx.conn,
                organisation_id=org.id,
                actor="cli",
                action="api_key.revoke",
                subject=args.key_id,
            )
        # Requests with it are refused at once; its open event feeds end within
        # feed_recheck_seconds, on every instance.
        print(f"API key {args.key_id} of {org.slug} revoked")
        return 0

    return _run(run, args)


def cmd_credits_add(args: argparse.Namespace) -> int:
    from showme_core.organisations import change_credits, find_organisation

    if args.amount <= 0:
        raise CliError("--amount must be a positive number of credits")

    async def run(showme: Any) -> int:
        async with showme.transaction() as tx:
            org = await find_organisation(tx.conn, args.org)
            balance = await change_credits(
                tx.conn, org.id, args.amount, reason="topup", actor="cli"
            )
            await tx.event(org.id, "credits.changed", {"credits": balance})
        print(f"{org.slug} now has {balance} SMS credits")
        return 0

    return _run(run, args)


def cmd_purge(args: argparse.Namespace) -> int:
    """One sweep by hand: expiries announced, media past retention purged (of one organisation
    with --org), bytes a crash left without a row removed."""
    from showme_core.media import purge_expired, remove_orphans
    from showme_core.organisations import find_organisation
    from showme_core.sweeps import announce_expired

    async def run(showme: Any) -> int:
        org_id = None
        if args.org:
            async with showme.db.read() as db:
                org_id = (await find_organisation(db, args.org)).id
        expired = await announce_expired(showme)
        if expired:
            print(f"announced {expired} expired invite{'s' if expired != 1 else ''}")
        count = await purge_expired(showme, organisation_id=org_id)
        print(f"purged {count} picture{'s' if count != 1 else ''} past retention")
        orphans = await remove_orphans(showme)
        if orphans:
            print(f"removed {orphans} stored file{'s' if orphans != 1 else ''} without a row")
        return 0

    return _run(run, args)


def cmd_check(args: argparse.Namespace) -> int:
    """Ask every active SMS provider whether its credentials work, and every CAD adapter or
    durable consumer with a ``check()`` whether what it reaches does: a verdict for each."""

    async def run(showme: Any) -> int:
        failed = 0
        if showme.settings.public_url is None:
            failed += 1
            print("public_url: NOT SET - caller links and SMS delivery reports need it")
        else:
            print(f"public_url: {showme.settings.public_url}")
        if not (showme.settings.metrics_listen or showme.settings.metrics_token):
            # Not a failure: a proxy may keep /metrics from the public. Worth knowing.
            print("metrics: OPEN on the main port - set metrics_listen or metrics_token")
        timeout = showme.settings.sms_timeout_seconds
        for name, provider in sorted(showme.sms_providers.items()):
            if not await _check_one(name, provider, timeout, "(no account behind it)"):
                failed += 1
        # CAD adapters and durable consumers that can say whether what they reach works.
        for name, consumer in sorted(showme.consumers.consumers.items()):
            if getattr(consumer, "check", None) is not None and not await _check_one(
                name, consumer, timeout, ""
            ):
                failed += 1
        return 1 if failed else 0

    return _run(run, args)


async def _check_one(name: str, checked: Any, timeout: float, without: str) -> bool:
    """Print one verdict of ``showme check``; False when the check failed."""
    check = getattr(checked, "check", None)
    if check is None:
        print(f"{name}: nothing to check {without}".rstrip())
        return True
    try:
        detail = await asyncio.wait_for(check(), timeout=timeout)
    except Exception as exc:
        print(f"{name}: FAILED - {exc or type(exc).__name__}")
        return False
    print(f"{name}: OK - {detail}")
    return True


def cmd_plugins(args: argparse.Namespace) -> int:
    from showme_core.plugins import PluginHost

    settings = _settings(args)
    host = PluginHost(settings)
    print("built-in defaults: outbox (SMS), filesystem (storage), static (ICE)")
    rows = host.installed()
    if not rows:
        print("no plugins installed in the 'showme' entry-point group")
    for plugin in rows:
        state = "active" if plugin.active else "installed"
        print(f"{plugin.name:24} {state:10} {plugin.value} ({plugin.distribution or '?'})")
    return 0


# -- parser ------------------------------------------------------------------------------------


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML configuration file (or SHOWME_CONFIG)")
    parser.add_argument("--data-dir", dest="data_dir", help="data directory (or SHOWME_DATA_DIR)")
    parser.add_argument(
        "--database-url", dest="database_url", help="SQLAlchemy URL (or SHOWME_DATABASE_URL)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="showme", description="ShowMe: let an emergency caller show the scene."
    )
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="migrate and create a demo organisation and dispatcher on first start",
    )
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="bring the database to the latest schema").set_defaults(
        func=cmd_migrate
    )

    org = sub.add_parser("org", help="organisations").add_subparsers(
        dest="org_command", required=True, metavar="ACTION"
    )
    org_create = org.add_parser("create", help="create an organisation (a PSAP)")
    org_create.add_argument("--slug", required=True, help="short unique name, e.g. psap-north")
    org_create.add_argument("--name", required=True, help="display name")
    org_create.add_argument(
        "--region", required=True, help="default phone region, ISO 3166 code (BE, FR, US...)"
    )
    org_create.add_argument("--language", default="en", help="default SMS language")
    org_create.add_argument(
        "--invite-ttl", type=int, default=6 * 3600, help="link lifetime, seconds"
    )
    org_create.add_argument(
        "--retention", type=int, default=6 * 3600, help="media retention, seconds"
    )
    org_create.add_argument("--credits", type=int, default=50, help="initial SMS credits")
    org_create.add_argument(
        "--countries",
        help="phone regions links may be sent to, comma separated (default: --region only)",
    )
    org_create.add_argument(
        "--sms-on-unclear",
        choices=["continue", "stop"],
        default="continue",
        help="after a provider timeout or 5xx: try the next provider (default) or stop",
    )
    org_create.add_argument(
        "--camera",
        choices=["environment", "user"],
        default="environment",
        help="camera the caller's live video starts with (default: the rear one)",
    )
    org_create.add_argument(
        "--video-audio",
        action="store_true",
        help="send the caller's microphone with live video (off by default: the caller is on the "
        "voice call)",
    )
    org_create.add_argument(
        "--sms-provider", action="append", help="SMS provider chain, in order (default: outbox)"
    )
    org_create.set_defaults(func=cmd_org_create)
    org_configure = org.add_parser(
        "configure", help="set or clear an organisation's settings for a plugin"
    )
    org_configure.add_argument("--org", required=True, help="organisation slug")
    org_configure.add_argument("--plugin", required=True, help="the plugin's name (entry point)")
    what = org_configure.add_mutually_exclusive_group(required=True)
    what.add_argument("--json", help='the whole block as JSON, e.g. \'{"sender": "PSAP N"}\'')
    what.add_argument("--clear", action="store_true", help="remove the block")
    org_configure.set_defaults(func=cmd_org_configure)

    user = sub.add_parser("user", help="users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    user_create = user.add_parser("create", help="create a local account")
    user_create.add_argument("--org", required=True, help="organisation slug")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--name")
    user_create.add_argument(
        "--role", default="dispatcher", choices=["dispatcher", "supervisor", "admin"]
    )
    user_create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else SHOWME_NEW_PASSWORD, else a prompt)",
    )
    user_create.set_defaults(func=cmd_user_create)

    apikey = sub.add_parser("apikey", help="API keys for CAD systems").add_subparsers(
        dest="apikey_command", required=True, metavar="ACTION"
    )
    apikey_create = apikey.add_parser("create", help="create a key (printed once)")
    apikey_create.add_argument("--org", required=True, help="organisation slug")
    apikey_create.add_argument("--name", required=True, help="what uses it, e.g. 'CAD north'")
    apikey_create.add_argument(
        "--scope", action="append", help="invites:write, invites:read, events:read (default: all)"
    )
    apikey_create.set_defaults(func=cmd_apikey_create)
    apikey_revoke = apikey.add_parser("revoke", help="revoke a key at once")
    apikey_revoke.add_argument("--org", required=True, help="organisation slug")
    apikey_revoke.add_argument("key_id", help="the key's id, as 'apikey create' printed it")
    apikey_revoke.set_defaults(func=cmd_apikey_revoke)

    credits = sub.add_parser("credits", help="SMS credits").add_subparsers(
        dest="credits_command", required=True, metavar="ACTION"
    )
    credits_add = credits.add_parser("add", help="top up an organisation's credits")
    credits_add.add_argument("--org", required=True, help="organisation slug")
    credits_add.add_argument("--amount", type=int, required=True)
    credits_add.set_defaults(func=cmd_credits_add)

    sub.add_parser(
        "check", help="check the configured SMS providers' credentials against the providers"
    ).set_defaults(func=cmd_check)

    purge = sub.add_parser(
        "purge",
        help="purge media past retention now (the server also does it every minute)",
    )
    purge.add_argument("--org", help="only this organisation (slug)")
    purge.set_defaults(func=cmd_purge)

    sub.add_parser("plugins", help="list installed and active plugins").set_defaults(
        func=cmd_plugins
    )
    return parser


def _with_plugin_commands(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> None:
    """Add the commands of the active plugins (``showme_register_commands``): the settings are
    read first, from the same ``--config`` and variables, to know which plugins are active."""
    from showme_core.defaults import DEFAULT_PLUGINS
    from showme_core.plugins import PluginHost

    # Only the options that locate the settings are read here: the full parser would refuse
    # the plugin's command name, which is what this function is about to add.
    globals_only = argparse.ArgumentParser(add_help=False)
    _add_global_options(globals_only)
    known, _rest = globals_only.parse_known_args(argv)
    try:
        settings = _settings(known)
        commands = PluginHost(settings, defaults=DEFAULT_PLUGINS).commands()
    except (ConfigError, PluginError):
        return  # the command that runs reports it
    sub = next(
        action
        for action in parser._actions  # argparse keeps its subparsers here
        if isinstance(action, argparse._SubParsersAction)
    )
    for command in commands:
        if command.name in sub.choices:
            raise PluginError(f"a plugin's command {command.name!r} is already a command")
        child = sub.add_parser(command.name, help=command.help)
        command.configure(child)

        def run(args: argparse.Namespace, command: Any = command) -> int:
            return _run(lambda showme: command.run(showme, args), args)

        child.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    # Everything ShowMe writes (database, its WAL, media, logs, the demo login) is private.
    os.umask(0o077)
    parser = build_parser()
    try:
        _with_plugin_commands(parser, argv)
    except PluginError as exc:
        print(f"showme: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except (CliError, ConfigError, PluginError, ShowMeError) as exc:
        print(f"showme: error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        print(
            f"showme: error: the database refused the operation ({type(exc.orig).__name__}); "
            "if it is new or was upgraded, run 'showme migrate' first",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
