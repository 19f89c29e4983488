"""Local user accounts (argon2 hashes), roles, and API keys for CAD systems."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core import audit
from showme_core.clock import utcnow
from showme_core.errors import Conflict, InvalidInput, NotAuthenticated
from showme_core.ids import new_id
from showme_core.store.schema import api_keys, users

API_KEY_PREFIX = "smk_"
MIN_PASSWORD_LENGTH = 10


class Role(enum.StrEnum):
    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Scope(enum.StrEnum):
    INVITES_WRITE = "invites:write"
    INVITES_READ = "invites:read"
    EVENTS_READ = "events:read"
    MEDIA_READ = "media:read"
    MEDIA_HOLD = "media:hold"


ALL_SCOPES = [scope.value for scope in Scope]


@dataclass(frozen=True)
class User:
    id: str
    organisation_id: str
    email: str
    name: str
    role: Role

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role.value}


@dataclass(frozen=True)
class ApiKey:
    id: str
    organisation_id: str
    name: str
    scopes: frozenset[str]


class Passwords:
    """argon2id hashing with the cost from settings (tests lower it)."""

    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verify against a real hash for unknown users too, so timing does not reveal accounts.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False


def _user(row: Any) -> User:
    return User(row.id, row.organisation_id, row.email, row.name, Role(row.role))


async def create_user(
    conn: AsyncConnection,
    passwords: Passwords,
    *,
    organisation_id: str,
    email: str,
    name: str,
    role: Role,
    password: str,
    actor: str = "cli",
) -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput("email: give a valid address", code="invalid_email")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password: at least {MIN_PASSWORD_LENGTH} characters", code="weak_password"
        )
    if await conn.scalar(select(users.c.id).where(users.c.email == email)):
        raise Conflict(f"a user with email {email} exists", code="email_taken")
    user_id = new_id()
    await conn.execute(
        users.insert().values(
            id=user_id,
            organisation_id=organisation_id,
            email=email,
            name=name,
            role=role.value,
            password_hash=passwords.hash(password),
            active=True,
            created_at=utcnow(),
        )
    )
    await audit.record(
        conn, organisation_id=organisation_id, actor=actor, action="user.create", subject=user_id
    )
    return User(user_id, organisation_id, email, name, role)


async def authenticate(
    conn: AsyncConnection, passwords: Passwords, email: str, password: str
) -> User:
    row = (
        await conn.execute(
            select(users).where(users.c.email == email.strip().lower(), users.c.active)
        )
    ).first()
    # argon2 is deliberately slow: keep it off the event loop.
    valid = await asyncio.to_thread(passwords.verify, row.password_hash if row else None, password)
    if not valid or row is None:
        raise NotAuthenticated("Wrong email or password.", code="bad_credentials")
    return _user(row)


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id, users.c.active))).first()
    return None if row is None else _user(row)


def _key_hash(key: str) -> str:
    # API keys carry 256 random bits: a plain SHA-256 is a safe, fast lookup hash for them.
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    conn: AsyncConnection,
    *,
    organisation_id: str,
    name: str,
    scopes: list[str] | None = None,
    actor: str = "cli",
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which is shown once and never stored."""
    chosen = scopes or ALL_SCOPES
    unknown = sorted(set(chosen) - set(ALL_SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scopes {', '.join(unknown)} (known: {', '.join(ALL_SCOPES)})")
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(new_id(), organisation_id, name, frozenset(chosen))
    await conn.execute(
        api_keys.insert().values(
            id=key.id,
            organisation_id=organisation_id,
            name=name,
            key_hash=_key_hash(secret),
            scopes=sorted(chosen),
            created_at=utcnow(),
        )
    )
    await audit.record(
        conn, organisation_id=organisation_id, actor=actor, action="apikey.create", subject=key.id
    )
    return key, secret


async def find_api_key(conn: AsyncConnection, secret: str) -> ApiKey | None:
    if not secret.startswith(API_KEY_PREFIX):
        return None
    row = (
        await conn.execute(
            select(api_keys).where(
                api_keys.c.key_hash == _key_hash(secret), api_keys.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    return ApiKey(row.id, row.organisation_id, row.name, frozenset(row.scopes))


async def revoke_api_key(conn: AsyncConnection, organisation_id: str, key_id: str) -> bool:
    """Revoke a key of the organisation; False when it has no such key. Revoking twice keeps
    the first time (the audit and the key agree on when it stopped working)."""
    await conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            api_keys.c.organisation_id == organisation_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    found = await conn.scalar(
        select(api_keys.c.id).where(
            api_keys.c.id == key_id, api_keys.c.organisation_id == organisation_id
        )
    )
    return found is not None
