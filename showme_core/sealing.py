"""Secrets ShowMe must keep itself, sealed with the service's keys (AES-GCM).

What the store must be able to give back but must not hold in the clear (a webhook's signing
secret, a link to replay for an idempotent retry) is sealed with a key derived (HKDF-SHA256)
from ``secret_keys`` and a purpose, so a key for one purpose opens nothing of another, and, when
given, a secret only the client holds (an ``Idempotency-Key``), so a copy of the database alone
opens nothing. Keys rotate: sealing uses the newest, opening tries each.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"s1"


def _key(secret: str, purpose: str, holder_secret: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=holder_secret or None,
        info=b"showme sealing " + purpose.encode(),
    ).derive(secret.encode())


def seal(data: bytes, purpose: str, keys: list[str], holder_secret: bytes = b"") -> str:
    """``data`` sealed for ``purpose`` with the newest of ``keys`` (and ``holder_secret``)."""
    nonce = os.urandom(12)
    sealed = AESGCM(_key(keys[-1], purpose, holder_secret)).encrypt(nonce, data, VERSION)
    return (VERSION + b"." + base64.urlsafe_b64encode(nonce + sealed)).decode()


def unseal(sealed: str, purpose: str, keys: list[str], holder_secret: bytes = b"") -> bytes | None:
    """What :func:`seal` sealed, or None when no key (or a wrong holder secret) opens it."""
    version, _, body = sealed.encode().partition(b".")
    if version != VERSION:
        return None
    try:
        raw = base64.urlsafe_b64decode(body)
    except ValueError:
        return None
    nonce, ciphertext = raw[:12], raw[12:]
    for secret in reversed(keys):
        try:
            return AESGCM(_key(secret, purpose, holder_secret)).decrypt(nonce, ciphertext, VERSION)
        except InvalidTag:
            continue
    return None
