"""SMS delivery reports and abuse control

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_countries", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "sms_on_unclear", sa.String(length=16), server_default="continue", nullable=False
            )
        )
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_secret_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_sms_messages_provider_id", ["provider", "provider_message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_sms_messages_provider_id")
        batch_op.drop_column("callback_secret_hash")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_column("sms_on_unclear")
        batch_op.drop_column("allowed_countries")
