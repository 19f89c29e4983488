"""Twilio's ``X-Twilio-Signature``: HMAC-SHA1 with the account's auth token, base64.

The signed string is the full URL Twilio requested (scheme, host, path and query) followed by
every form parameter, sorted by name (values of a repeated name sorted too), as ``name + value``
with no separators. Twilio is inconsistent about writing the default port (``:443`` for https,
``:80`` for http) into the URL it signs, so a signature over the URL with or without it is good.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit, urlunsplit

DEFAULT_PORTS = {"https": 443, "http": 80}


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends for a request to ``url`` with form ``params``."""
    by_name: dict[str, list[str]] = {}
    for name, value in params:
        by_name.setdefault(name, []).append(value)
    signed = url + "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """``url`` as given, and with its default port added or removed (when it has one)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    if default is None or not parts.hostname:
        return [url]
    userinfo, _, hostport = parts.netloc.rpartition("@")
    prefix = f"{userinfo}@" if userinfo else ""
    if port is None:
        other = _with_netloc(parts, f"{prefix}{hostport}:{default}")
    elif port == default:
        other = _with_netloc(parts, prefix + hostport[: hostport.rindex(":")])
    else:
        return [url]
    return [url, other]


def _with_netloc(parts: SplitResult, netloc: str) -> str:
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def is_valid(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str | None
) -> bool:
    """Whether ``signature`` is Twilio's for this request (constant-time comparison)."""
    if not signature or not auth_token:
        return False
    pairs = list(params)
    given = signature.strip().encode()
    found = False
    for candidate in url_variants(url):
        expected = compute_signature(auth_token, candidate, pairs).encode()
        # Every variant is compared, so the time taken does not say which one matched.
        found |= hmac.compare_digest(expected, given)
    return found
