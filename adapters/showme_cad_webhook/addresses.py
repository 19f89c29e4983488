"""Where a webhook may go: a public address, found when it is sent and connected to as found.

An endpoint's URL is chosen by an admin, but the name in it resolves wherever its DNS says, and
that can change between two requests (DNS rebinding). So every attempt resolves the name once,
refuses the attempt if any address is not public (private, loopback, link-local, multicast,
reserved, unspecified, shared, documentation, or an IPv4 one of those inside an IPv6 address),
and then connects to that very address (``transport.py``), with TLS still checking the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# ``(host, port) -> addresses``: the system's resolver, or a test's.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2000
# NAT64's well-known prefixes carry an IPv4 address in their last 32 bits.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class AddressRefused(Exception):
    """The URL or the address it resolves to may not receive webhooks; the message says why."""


@dataclass(frozen=True)
class Target:
    """An endpoint's URL, parsed and checked for its shape (not yet for its addresses)."""

    url: httpx.URL
    host: str  # ASCII (IDNA), lower case, without brackets
    port: int
    literal: IPAddress | None  # the host, when it is an address rather than a name


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the system's order of preference."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


def parse_url(url: str, *, allow_insecure: bool) -> Target:
    """Check an endpoint URL's shape: https (http only with the test setting), a host, no user
    name or password (they would be stored in the clear), no fragment."""
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise AddressRefused(f"The URL cannot be read: {exc}.") from None
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parsed.scheme not in schemes:
        raise AddressRefused("Webhook URLs must use https.")
    if not parsed.raw_host:
        raise AddressRefused("The URL has no host.")
    if parsed.userinfo:
        raise AddressRefused("Put no user name or password in the URL; deliveries are signed.")
    if parsed.fragment:
        raise AddressRefused("The URL must not have a fragment (#...).")
    host = parsed.raw_host.decode("ascii").lower().strip("[]").rstrip(".")
    if not host:
        raise AddressRefused("The URL has no host.")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(parsed, host, port, literal)


def refusal(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why ``address`` may not receive webhooks, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal(embedded, allow_loopback=allow_loopback)
            if inner is not None:
                return inner
            if address.ipv4_mapped is not None or any(address in net for net in _NAT64):
                # ::ffff:a.b.c.d and NAT64's 64:ff9b::a.b.c.d reach a.b.c.d, which is public
                # (the prefixes themselves count as reserved).
                return None
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    for reason, flag in (
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return reason
    if not address.is_global:
        return "non-public"  # shared address space (100.64.0.0/10) and the like
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    for network in _NAT64:
        if address in network:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def checked_address(target: Target, resolver: Resolver, *, allow_loopback: bool) -> str:
    """The address to connect to for ``target``: resolved now, every address checked."""
    if target.literal is not None:
        addresses = [str(target.literal)]
    else:
        try:
            addresses = await resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"{target.host} does not resolve ({exc}).") from None
        if not addresses:
            raise AddressRefused(f"{target.host} does not resolve.")
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise AddressRefused(f"{target.host} resolves to {text!r}, not an address.") from None
        reason = refusal(address, allow_loopback=allow_loopback)
        if reason is not None:
            # Every address, not only the one we would use: a name that mixes a public and an
            # internal address is refused outright.
            where = str(address)
            if target.literal is None:
                where = f"{target.host} resolves to {address}"
            raise AddressRefused(
                f"{where}, a {reason} address: webhooks go to public addresses only"
            )
    return addresses[0].split("%", 1)[0]
