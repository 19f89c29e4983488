"""Link tokens: the secret in the caller's SMS link, shown once and stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 18  # 144 bits of randomness, 24 URL-safe characters
LINK_PATH = "/c/"


def mint() -> tuple[str, str]:
    """A new token and the hash to store for it."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    return 16 <= len(value) <= 64 and all(ch.isalnum() or ch in "-_" for ch in value)


def link_for(base_url: str, token: str) -> str:
    """The caller's link. The token is in the fragment, so it never reaches access logs or
    ``Referer`` headers; the page's script reads it and sends it in a header."""
    return f"{base_url.rstrip('/')}{LINK_PATH}#{token}"
