"""One HTTP attempt: resolve and check the address, then POST to that address.

The request goes to the checked address itself (the URL's host replaced by it), with the
``Host`` header and, for https, the TLS server name (SNI, and the certificate check) kept on
the URL's name; so no second resolution happens between the check and the connection. Proxies
from the environment are not used (they would connect elsewhere), redirects are not followed
(a 3xx is a failed attempt) and at most ``ANSWER_BYTES`` of an answer are read.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

import certifi
import httpx

from showme_cad_webhook.addresses import AddressRefused, Resolver, Target, checked_address
from showme_cad_webhook.const import USER_AGENT

if TYPE_CHECKING:
    from datetime import datetime

ANSWER_BYTES = 1024
MAX_ERROR = 300


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    address: str | None = None
    retry_after: float | None = None  # seconds the receiver asked for (429, 503)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificates checked against the system's and certifi's authorities (and ``ca_file``)."""
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    if ca_file is not None:
        context.load_verify_locations(str(ca_file))
    return context


def new_client(context: ssl.SSLContext, max_parallel: int) -> httpx.AsyncClient:
    """A client for one endpoint (its connections are reused between attempts)."""
    return httpx.AsyncClient(
        verify=context,
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_parallel, max_keepalive_connections=max_parallel),
        headers={"User-Agent": USER_AGENT},
    )


async def post(
    client: httpx.AsyncClient,
    target: Target,
    resolver: Resolver,
    *,
    allow_loopback: bool,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
    now: datetime,
) -> Outcome:
    """POST ``body`` to ``target`` within ``timeout`` seconds, whatever happens."""
    started = time.monotonic()
    address: str | None = None

    def took() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        async with asyncio.timeout(timeout):
            address = await checked_address(target, resolver, allow_loopback=allow_loopback)
            pinned = target.url.copy_with(host=address)
            extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
            request = client.build_request(
                "POST",
                pinned,
                content=body,
                headers={
                    **headers,
                    "Host": target.url.netloc.decode("ascii"),
                    "Content-Type": "application/json",
                },
                extensions={**extensions, "timeout": httpx.Timeout(timeout).as_dict()},
            )
            response = await client.send(request, stream=True)
            try:
                answer = b""
                async for chunk in response.aiter_raw():
                    answer += chunk
                    if len(answer) >= ANSWER_BYTES:
                        break
            finally:
                await response.aclose()
    except AddressRefused as exc:
        return Outcome(took(), error=str(exc)[:MAX_ERROR], address=address)
    except TimeoutError:
        return Outcome(took(), error=f"no answer within {timeout:g} s", address=address)
    except httpx.HTTPError as exc:
        detail = str(exc) or type(exc).__name__
        return Outcome(took(), error=f"{type(exc).__name__}: {detail}"[:MAX_ERROR], address=address)
    except (OSError, ssl.SSLError) as exc:
        return Outcome(took(), error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR], address=address)
    error = None
    if not 200 <= response.status_code < 300:
        text = answer.decode("utf-8", "replace").strip()
        printable = "".join(ch if ch.isprintable() else " " for ch in text)
        error = f"HTTP {response.status_code}" + (f": {printable}" if printable else "")
    return Outcome(
        took(),
        status_code=response.status_code,
        error=error[:MAX_ERROR] if error else None,
        address=address,
        retry_after=_retry_after(response.headers.get("retry-after"), now),
    )


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
