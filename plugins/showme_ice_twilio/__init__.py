"""ICE servers from Twilio's Network Traversal Service: one token per signaling socket.

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Tokens.json`` with the form field ``Ttl``,
HTTP Basic auth (an API key and secret, or the account SID and auth token); the answer's
``ice_servers`` go to the browser as they are, minus the legacy ``url`` key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from showme_core.hookspecs import hookimpl
from showme_core.providers import IceConfig, IceProvider, IceRequest

if TYPE_CHECKING:
    from showme_core.config import Settings

NAME = "twilio"
DOMAIN = "ice_twilio"
DEFAULT_BASE_URL = "https://api.twilio.com"


class TwilioIceError(RuntimeError):
    """Twilio did not hand out a token; the message says why, without credentials."""


class TwilioIce:
    name = NAME

    def __init__(
        self,
        account_sid: str,
        username: str,
        password: str,
        ttl: int = 600,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 5.0,
    ) -> None:
        if not account_sid.startswith("AC"):
            raise ValueError("ice_twilio needs 'account_sid' (AC...)")
        if not username or not password:
            raise ValueError("ice_twilio needs 'api_key' and 'api_secret' (or 'auth_token')")
        if not 1 <= ttl <= 86400:
            raise ValueError("ice_twilio 'ttl' must be between 1 and 86400 seconds")
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Tokens.json"
        self.auth = (username, password)
        self.ttl = ttl
        self.timeout = timeout

    async def ice_servers(self, request: IceRequest) -> IceConfig:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                answer = await client.post(
                    self.url,
                    data={"Ttl": str(self.ttl)},
                    auth=self.auth,
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise TwilioIceError(f"Twilio could not be reached: {type(exc).__name__}") from exc
        if answer.status_code != 201:
            detail = _error_detail(answer)
            raise TwilioIceError(f"Twilio refused a token ({answer.status_code}): {detail}")
        body = answer.json()
        servers = [
            {
                key: value
                for key, value in server.items()
                if key in ("urls", "username", "credential")
            }
            for server in body.get("ice_servers", [])
            if isinstance(server, dict) and "urls" in server
        ]
        return IceConfig(ice_servers=servers, ttl=int(body.get("ttl", self.ttl)))


def _error_detail(answer: httpx.Response) -> str:
    try:
        body: Any = answer.json()
    except ValueError:
        return "no JSON body"
    if isinstance(body, dict):
        return f"{body.get('code', '?')} {body.get('message', '')}".strip()
    return "unexpected body"


@hookimpl
def showme_register_ice_providers(
    register: Callable[[IceProvider], None], config: Settings
) -> None:
    options = config.settings_for(DOMAIN)
    register(
        TwilioIce(
            account_sid=str(options.get("account_sid", "")),
            username=str(options.get("api_key") or options.get("account_sid", "")),
            password=str(options.get("api_secret") or options.get("auth_token", "")),
            ttl=int(options.get("ttl", 600)),
            base_url=str(options.get("base_url", DEFAULT_BASE_URL)),
            timeout=float(options.get("timeout", 5.0)),
        )
    )
