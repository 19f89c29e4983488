"""The relational schema (SQLAlchemy Core). Migrations create exactly this; a test checks."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


organisations = Table(
    "organisations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("default_region", String(2), nullable=False),
    Column("default_language", String(8), nullable=False),
    Column("invite_ttl_seconds", Integer, nullable=False),
    Column("retention_seconds", Integer, nullable=False),
    Column("sms_providers", JSON, nullable=False),
    Column("sms_credits", Integer, nullable=False),
    # Last event id handed out; bumped in the event's own transaction (see store/events.py).
    Column("event_seq", BigInteger, nullable=False),
    _ts("created_at"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=False),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("active", Boolean, nullable=False),
    _ts("created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    _ts("created_at"),
    _ts("revoked_at", nullable=True),
)

invites = Table(
    "invites",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("phone", String(20), nullable=False),
    Column("incident_id", String(100), nullable=True),
    Column("language", String(8), nullable=False),
    Column("created_by", String(64), nullable=True),
    Column("created_via", String(16), nullable=False),
    _ts("created_at"),
    _ts("expires_at"),
    _ts("opened_at", nullable=True),
    _ts("ended_at", nullable=True),
    Column("ended_by", String(64), nullable=True),
    Index("ix_invites_org_created", "organisation_id", "created_at"),
)

sms_messages = Table(
    "sms_messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=False),
    Column("invite_id", String(32), ForeignKey("invites.id"), nullable=False),
    Column("to_number", String(20), nullable=False),
    Column("language", String(8), nullable=False),
    Column("segments", Integer, nullable=False),
    Column("credits_charged", Integer, nullable=False),
    Column("provider", String(64), nullable=True),
    Column("provider_message_id", String(128), nullable=True),
    Column("status", String(16), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    Index("ix_sms_messages_invite", "invite_id"),
)

events = Table(
    "events",
    metadata,
    Column("organisation_id", String(32), ForeignKey("organisations.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(64), nullable=False),
    Column("invite_id", String(32), nullable=True),
    Column("data", JSON, nullable=False),
    _ts("created_at"),
)

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=True),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(100), nullable=True),
    Column("details", JSON, nullable=False),
    _ts("created_at"),
    Index("ix_audit_records_org_created", "organisation_id", "created_at"),
)

credit_entries = Table(
    "credit_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("balance", Integer, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("sms_message_id", String(32), nullable=True),
    _ts("created_at"),
    UniqueConstraint("sms_message_id", "reason", name="uq_credit_entries_sms_reason"),
)
