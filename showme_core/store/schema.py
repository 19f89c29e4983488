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
    false,
    text,
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
    # Live video policy: audio off (the caller is on the voice call) and the rear camera.
    Column("video_audio", Boolean, nullable=False, server_default=false()),
    Column("video_facing", String(16), nullable=False, server_default="environment"),
    # Abuse control: the countries (phone regions) links may be sent to; null = its own region.
    Column("allowed_countries", JSON, nullable=True),
    # After an unclear provider failure: "continue" to the next provider, or "stop".
    Column("sms_on_unclear", String(16), nullable=False, server_default="continue"),
    # Last event id handed out; bumped in the event's own transaction (see store/events.py).
    Column("event_seq", BigInteger, nullable=False),
    _ts("created_at"),
    # Settings of plugins for this organisation, one block per plugin (docs/plugins.md).
    Column("plugin_settings", JSON, nullable=False, server_default="{}"),
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

AWAITING_EXPIRY = "ended_at IS NULL AND expiry_announced_at IS NULL"

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
    # An admin's legal hold keeps the invite's media past its retention period.
    Column("legal_hold", Boolean, nullable=False, server_default=false()),
    Column("legal_hold_by", String(100), nullable=True),
    _ts("legal_hold_at", nullable=True),
    # SHA-256 of the device id of the phone that holds the link (docs/live.md, "One phone").
    Column("device_hash", String(64), nullable=True),
    # Short texts a plugin stamped on the invite before it was created (CAD data).
    Column("labels", JSON, nullable=False, server_default="{}"),
    # When the sweep announced the invite's expiry (invite.expired), once.
    _ts("expiry_announced_at", nullable=True),
    Index("ix_invites_org_created", "organisation_id", "created_at"),
    Index("ix_invites_org_incident", "organisation_id", "incident_id"),
    # The sweep's question each minute, "which invites expired unannounced?", without a scan.
    Index(
        "ix_invites_awaiting_expiry",
        "expires_at",
        sqlite_where=text(AWAITING_EXPIRY),
        postgresql_where=text(AWAITING_EXPIRY),
    ),
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
    # SHA-256 of the per-message secret in this message's delivery-report URL.
    Column("callback_secret_hash", String(64), nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    Index("ix_sms_messages_invite", "invite_id"),
    Index("ix_sms_messages_provider_id", "provider", "provider_message_id"),
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
    # An incident's session events: its invites' events without reading the whole feed.
    Index("ix_events_org_invite", "organisation_id", "invite_id"),
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

media = Table(
    "media",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=False),
    Column("invite_id", String(32), ForeignKey("invites.id"), nullable=False),
    # The invite's CAD incident, copied so an incident's pictures are found without a join.
    Column("incident_id", String(100), nullable=True),
    Column("kind", String(16), nullable=False),
    _ts("created_at"),
    _ts("captured_at", nullable=True),
    # SHA-256 of exactly the stored bytes; kept after a purge as evidence the picture existed.
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("storage_key", String(200), nullable=False),
    Column("thumbnail_key", String(200), nullable=False),
    Column("location", JSON, nullable=True),
    Column("idempotency_key", String(128), nullable=True),
    # SHA-256 of the uploaded bytes, so a retry with the same key can be told from a new picture.
    Column("upload_sha256", String(64), nullable=False),
    _ts("purged_at", nullable=True),
    UniqueConstraint("invite_id", "idempotency_key", name="uq_media_invite_idempotency"),
    Index("ix_media_org_created", "organisation_id", "created_at"),
    Index("ix_media_invite_created", "invite_id", "created_at"),
    Index("ix_media_org_incident", "organisation_id", "incident_id"),
)

# Who has seen a picture at full size: the audit records each (picture, viewer) once.
media_views = Table(
    "media_views",
    metadata,
    Column("media_id", String(32), ForeignKey("media.id"), primary_key=True),
    Column("actor", String(100), primary_key=True),
    _ts("created_at"),
)


# A request a client may retry (Idempotency-Key): its first answer, replayed to every retry.
idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("organisation_id", String(32), ForeignKey("organisations.id"), primary_key=True),
    Column("actor", String(100), primary_key=True),
    Column("operation", String(100), primary_key=True),
    # SHA-256 of the key: the key (which seals the link below) is never stored.
    Column("key_hash", String(64), primary_key=True),
    Column("request_sha256", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    # The answer's link, encrypted with a key derived from the Idempotency-Key and secret_keys.
    Column("sealed_link", Text, nullable=True),
    _ts("created_at"),
    Index("ix_idempotency_records_created", "created_at"),
)

# Where each durable event consumer is, per organisation, and which instance delivers to it.
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
    _ts("updated_at"),
    Column("lease_owner", String(64), nullable=True),
    _ts("lease_until", nullable=True),
)

# What plugins keep (docs/plugins.md, "State"): records of their own kinds, per organisation.
plugin_records = Table(
    "plugin_records",
    metadata,
    Column("plugin", String(64), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("organisation_id", String(32), ForeignKey("organisations.id"), nullable=True),
    Column("data", JSON, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    Index("ix_plugin_records_listing", "plugin", "kind", "organisation_id", "created_at"),
)
