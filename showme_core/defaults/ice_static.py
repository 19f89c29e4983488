"""The ``static`` ICE provider: STUN/TURN servers written in the configuration, as they are.

Enough on a LAN (no servers at all: host candidates) or with a TURN server that has fixed
credentials. Short-lived per-session credentials come from a plugin (``showme_ice_coturn``,
``showme_ice_twilio``). TURN over TLS on 443, which guest networks rarely block, is one more URL::

    [plugin_settings.static]
    ice_servers = [
      { urls = "stun:turn.example.org:3478" },
      { urls = ["turn:turn.example.org:3478?transport=udp",
                "turns:turn.example.org:443?transport=tcp"],
        username = "showme", credential = { "$env" = "TURN_PASSWORD" } },
    ]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from showme_core.hookspecs import hookimpl
from showme_core.providers import IceConfig, IceProvider, IceRequest

if TYPE_CHECKING:
    from showme_core.config import Settings

NAME = "static"
ICE_KEYS = {"urls", "username", "credential"}


def validate_ice_servers(servers: Any) -> list[dict[str, Any]]:
    """Check a list of ``RTCIceServer`` dictionaries; anything else is a configuration error."""
    if not isinstance(servers, list):
        raise ValueError("ice_servers must be a list of {urls, username?, credential?}")
    clean: list[dict[str, Any]] = []
    for server in servers:
        if not isinstance(server, dict) or "urls" not in server or set(server) - ICE_KEYS:
            raise ValueError(f"not an ICE server: {server!r}")
        urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
        if not urls or not all(
            isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns")
            for u in urls
        ):
            raise ValueError(f"ICE server urls must be stun:, stuns:, turn: or turns: {urls!r}")
        clean.append(dict(server))
    return clean


class StaticIce:
    name = NAME

    def __init__(self, servers: list[dict[str, Any]]) -> None:
        self.servers = servers

    async def ice_servers(self, request: IceRequest) -> IceConfig:
        return IceConfig(ice_servers=[dict(s) for s in self.servers])


@hookimpl
def showme_register_ice_providers(
    register: Callable[[IceProvider], None], config: Settings
) -> None:
    register(StaticIce(validate_ice_servers(config.settings_for(NAME).get("ice_servers", []))))
