"""Trace: EPCIS named queries, their webhook subscriptions and the journal of deliveries.

Revision ID: 0412_epcis_subscriptions
Revises: 0411_event_type
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "0412_epcis_subscriptions"
down_revision: str | None = "0411_event_type"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "epcis_named_query",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("token_public_id", sa.String(length=16), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_epcis_named_query_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_epcis_named_query_household_id_household"),
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_epcis_named_query")),
    )
    op.create_table(
        "epcis_subscription",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("query_name", sa.String(length=200), nullable=False),
        sa.Column("dest", sa.Text(), nullable=False),
        sa.Column("signature_token", sa.Text(), nullable=True),
        sa.Column("report_if_empty", sa.Boolean(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=True),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("initial_record_time", UTCDateTime(), nullable=True),
        sa.Column("cursor_pk", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_notified_at", UTCDateTime(), nullable=True),
        sa.Column("token_public_id", sa.String(length=16), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["query_name"],
            ["epcis_named_query.name"],
            name=op.f("fk_epcis_subscription_query_name_epcis_named_query"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_epcis_subscription_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_epcis_subscription_household_id_household"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epcis_subscription")),
    )
    op.create_index(op.f("ix_epcis_subscription_query_name"), "epcis_subscription", ["query_name"])
    op.create_table(
        "epcis_delivery",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=False),
        sa.Column("event_pks", sa.Text(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["epcis_subscription.id"],
            name=op.f("fk_epcis_delivery_subscription_id_epcis_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epcis_delivery")),
    )
    op.create_index("ix_epcis_delivery_due", "epcis_delivery", ["delivered_at", "next_attempt_at"])
    op.create_index(
        op.f("ix_epcis_delivery_subscription_id"), "epcis_delivery", ["subscription_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_epcis_delivery_subscription_id"), table_name="epcis_delivery")
    op.drop_index("ix_epcis_delivery_due", table_name="epcis_delivery")
    op.drop_table("epcis_delivery")
    op.drop_index(op.f("ix_epcis_subscription_query_name"), table_name="epcis_subscription")
    op.drop_table("epcis_subscription")
    op.drop_table("epcis_named_query")
