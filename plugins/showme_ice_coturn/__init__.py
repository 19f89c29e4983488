"""TURN REST credentials for coturn: a user name and password minted per signaling socket,
valid for ``ttl`` seconds, checked by coturn with the secret it shares with ShowMe.

The algorithm (coturn's ``use-auth-secret``): user name ``"<expiry unix time>:<user>"``, password
``base64(HMAC-SHA1(secret, user name))``. The time is the expiry, not the issue time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from showme_core.hookspecs import hookimpl
from showme_core.providers import IceConfig, IceProvider, IceRequest

if TYPE_CHECKING:
    from showme_core.config import Settings

NAME = "coturn"
DOMAIN = "ice_coturn"


def turn_credentials(secret: str, user: str, ttl: int, now: float | None = None) -> tuple[str, str]:
    """A coturn REST user name and password for ``user``, expiring ``ttl`` seconds from now."""
    username = f"{int(now if now is not None else time.time()) + ttl}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class CoturnIce:
    name = NAME

    def __init__(self, secret: str, urls: list[str], stun_urls: list[str], ttl: int) -> None:
        if not secret:
            raise ValueError("ice_coturn needs its 'secret' (coturn's static-auth-secret)")
        if not urls or not all(u.startswith(("turn:", "turns:")) for u in urls):
            raise ValueError("ice_coturn 'urls' must list turn: or turns: URLs")
        if not 1 <= ttl <= 86400:
            raise ValueError("ice_coturn 'ttl' must be between 1 and 86400 seconds")
        self.secret, self.urls, self.stun_urls, self.ttl = secret, urls, stun_urls, ttl

    async def ice_servers(self, request: IceRequest) -> IceConfig:
        username, password = turn_credentials(self.secret, request.peer_id, self.ttl)
        servers: list[dict[str, Any]] = []
        if self.stun_urls:
            servers.append({"urls": self.stun_urls})
        servers.append({"urls": self.urls, "username": username, "credential": password})
        return IceConfig(ice_servers=servers, ttl=self.ttl)


@hookimpl
def showme_register_ice_providers(
    register: Callable[[IceProvider], None], config: Settings
) -> None:
    options = config.settings_for(DOMAIN)
    register(
        CoturnIce(
            secret=str(options.get("secret", "")),
            urls=list(options.get("urls", [])),
            stun_urls=list(options.get("stun_urls", [])),
            ttl=int(options.get("ttl", 600)),
        )
    )
