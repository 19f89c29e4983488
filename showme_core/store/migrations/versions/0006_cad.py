"""incidents, idempotent invites, durable event consumers, plugin state and settings

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("plugin_settings", sa.JSON(), nullable=False, server_default="{}")
        )
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(_ts("expiry_announced_at", nullable=True))
        batch_op.create_index("ix_invites_org_incident", ["organisation_id", "incident_id"])
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_id", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_media_org_incident", ["organisation_id", "incident_id"])
    op.create_index("ix_events_org_invite", "events", ["organisation_id", "invite_id"])
    awaiting = sa.text("ended_at IS NULL AND expiry_announced_at IS NULL")
    op.create_index(
        "ix_invites_awaiting_expiry",
        "invites",
        ["expires_at"],
        sqlite_where=awaiting,
        postgresql_where=awaiting,
    )
    # Pictures already stored belong to their invite's incident.
    op.execute(
        "UPDATE media SET incident_id = "
        "(SELECT invites.incident_id FROM invites WHERE invites.id = media.invite_id)"
    )
    # Invites that expired before this release: announced already, as far as consumers care.
    op.execute(
        "UPDATE invites SET expiry_announced_at = expires_at "
        "WHERE ended_at IS NULL AND expires_at <= CURRENT_TIMESTAMP"
    )
    op.create_table(
        "idempotency_records",
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("operation", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("sealed_link", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_idempotency_records_organisation_id_organisations",
        ),
        sa.PrimaryKeyConstraint(
            "organisation_id", "actor", "operation", "key_hash", name="pk_idempotency_records"
        ),
    )
    op.create_index("ix_idempotency_records_created", "idempotency_records", ["created_at"])
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        _ts("updated_at"),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        _ts("lease_until", nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_event_cursors_organisation_id_organisations",
        ),
        sa.PrimaryKeyConstraint("consumer", "organisation_id", name="pk_event_cursors"),
    )
    op.create_table(
        "plugin_records",
        sa.Column("plugin", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name="fk_plugin_records_organisation_id_organisations",
        ),
        sa.PrimaryKeyConstraint("plugin", "kind", "id", name="pk_plugin_records"),
    )
    op.create_index(
        "ix_plugin_records_listing",
        "plugin_records",
        ["plugin", "kind", "organisation_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_plugin_records_listing", table_name="plugin_records")
    op.drop_table("plugin_records")
    op.drop_table("event_cursors")
    op.drop_index("ix_idempotency_records_created", table_name="idempotency_records")
    op.drop_table("idempotency_records")
    op.drop_index("ix_events_org_invite", table_name="events")
    op.drop_index("ix_invites_awaiting_expiry", table_name="invites")
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index("ix_media_org_incident")
        batch_op.drop_column("incident_id")
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.drop_index("ix_invites_org_incident")
        batch_op.drop_column("expiry_announced_at")
        batch_op.drop_column("labels")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("plugin_settings")
