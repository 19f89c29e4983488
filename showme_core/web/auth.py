"""Authenticating requests and checking the ``Origin`` of cookie-authenticated changes."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from showme_core.accounts import find_api_key, get_user
from showme_core.auth import SESSION_COOKIE, Principal
from showme_core.errors import Forbidden, NotAuthenticated

if TYPE_CHECKING:
    from showme_core.app import ShowMe

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def showme_of(conn: HTTPConnection) -> ShowMe:
    return conn.app.state.showme  # type: ignore[no-any-return]


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    # A WebSocket's own URL says ws:// or wss://; the page that opened it says http(s)://.
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}".lower()


def allowed_origins(conn: HTTPConnection) -> set[str]:
    showme = showme_of(conn)
    origins = {_origin_of(str(conn.base_url))}
    if showme.settings.public_url:
        origins.add(_origin_of(showme.settings.public_url))
    return origins


def check_origin(conn: HTTPConnection) -> None:
    """Cookie-authenticated changes must come from our own pages (CSRF defence)."""
    origin = conn.headers.get("origin")
    if origin is None or origin.lower() not in allowed_origins(conn):
        raise Forbidden("This request did not come from the ShowMe console.", code="origin_refused")


async def authenticate(conn: HTTPConnection, method: str = "GET") -> Principal:
    """The request's principal: an API key (``Authorization: Bearer``) or a session cookie."""
    showme = showme_of(conn)
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise NotAuthenticated("Use 'Authorization: Bearer <API key>'.", code="bad_api_key")
        async with showme.db.read() as db:
            key = await find_api_key(db, secret.strip())
        if key is None:
            raise NotAuthenticated("Unknown or revoked API key.", code="bad_api_key")
        return Principal.for_api_key(key)
    cookie = conn.cookies.get(SESSION_COOKIE)
    user_id = showme.cookies.read(cookie) if cookie else None
    if user_id is None:
        raise NotAuthenticated("Sign in first.")
    async with showme.db.read() as db:
        user = await get_user(db, user_id)
    if user is None:
        raise NotAuthenticated("Your account is no longer active; sign in again.")
    if method not in SAFE_METHODS:
        check_origin(conn)
    return Principal.for_user(user)


async def require_principal(conn: HTTPConnection, scope: str) -> Principal:
    method = conn.scope.get("method", "GET")
    principal = await authenticate(conn, method)
    if not principal.allows(scope):
        if principal.user is not None:
            raise Forbidden("Only an administrator may do this.", code="admin_only")
        raise Forbidden(f"This API key lacks the scope {scope!r}.", code="missing_scope")
    return principal
