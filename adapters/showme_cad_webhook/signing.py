"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signature is HMAC-SHA256, keyed with the secret's bytes, over ``"<id>.<timestamp>.<body>"``,
sent as ``v1,<base64>``; while a secret is being rotated, the old and the new each sign and the
header lists both, separated by a space, so a receiver holding either accepts the delivery.
Secrets are shown as ``whsec_`` and the key in standard base64, as the specification's libraries
read them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# 256 bits: as long as the HMAC's own output, beyond any guessing.
SECRET_BYTES = 32


def new_key() -> bytes:
    """A fresh signing key."""
    return secrets.token_bytes(SECRET_BYTES)


def shown(key: bytes) -> str:
    """The key as its receiver configures it (``whsec_...``)."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def signature(keys: list[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, newest first."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )


def headers(keys: list[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(keys, message_id, timestamp, body),
    }
