"""Who is calling: a dispatcher's signed session cookie, or a CAD system's API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from showme_core.accounts import ApiKey, Role, User

SESSION_COOKIE = "showme_session"


# Scopes a signed-in user holds only as an admin (API keys hold what they were given).
ADMIN_SCOPES = frozenset({"media:hold"})


@dataclass(frozen=True)
class Principal:
    """The authenticated party of a request, always bound to exactly one organisation."""

    kind: str  # "user" or "api_key"
    organisation_id: str
    actor: str  # what audit records and invites say: "user:<id>" or "api_key:<id>"
    user: User | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_user(cls, user: User) -> Principal:
        return cls("user", user.organisation_id, f"user:{user.id}", user=user)

    @classmethod
    def for_api_key(cls, key: ApiKey) -> Principal:
        return cls("api_key", key.organisation_id, f"api_key:{key.id}", scopes=key.scopes)

    def allows(self, scope: str) -> bool:
        # Every role may invite and watch; a legal hold is an admin's decision.
        if self.user is not None:
            return scope not in ADMIN_SCOPES or self.user.role is Role.ADMIN
        return scope in self.scopes

    @property
    def role(self) -> Role | None:
        return self.user.role if self.user else None


class SessionCookies:
    """Signed, timestamped cookies. Keys rotate: sign with the newest, accept any listed."""

    def __init__(self, keys: list[str], max_age: int) -> None:
        self._serializer = URLSafeTimedSerializer(keys, salt="showme.session")
        self.max_age = max_age

    def issue(self, user_id: str) -> str:
        return self._serializer.dumps({"u": user_id})

    def read(self, cookie: str) -> str | None:
        try:
            data: Any = self._serializer.loads(cookie, max_age=self.max_age)
        except (BadSignature, SignatureExpired):
            return None
        user_id = data.get("u") if isinstance(data, dict) else None
        return user_id if isinstance(user_id, str) else None
