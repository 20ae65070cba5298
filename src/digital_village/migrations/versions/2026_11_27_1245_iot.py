"""The net: device columns, installations, readings, daily seals, integrations, alerts, policies.

Revision ID: 0005
Revises: 0001
Depends on: 0002 (seals and installations point at ledger entries)
Create Date: 2026-11-27 12:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0002"


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place, so api_token's foreign key is untouched.
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metrics", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("retired_at", UTCDateTime(), nullable=True))

    op.create_table(
        "device_installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("parcel_dkbm", sa.String(length=19), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("installed_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_device_installation_device_id_device")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_device_installation_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_installation")),
    )
    with op.batch_alter_table("device_installation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_installation_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_device_installation_parcel_dkbm"), ["parcel_dkbm"], unique=False
        )

    op.create_table(
        "reading_seal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parcel_dkbm", sa.String(length=19), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_reading_seal_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_seal")),
        sa.UniqueConstraint(
            "parcel_dkbm", "day", "part", name=op.f("uq_reading_seal_parcel_dkbm_day_part")
        ),
    )
    with op.batch_alter_table("reading_seal", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reading_seal_parcel_dkbm"), ["parcel_dkbm"], unique=False
        )

    op.create_table(
        "reading",
        sa.Column("device_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("metric_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("time_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("seal_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["seal_id"], ["reading_seal.id"], name=op.f("fk_reading_seal_id_reading_seal")
        ),
        sa.PrimaryKeyConstraint("device_id", "metric_id", "time_ms", name=op.f("pk_reading")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "reading_day",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_reading_day_device_id_device")
        ),
        sa.PrimaryKeyConstraint("device_id", "day", name=op.f("pk_reading_day")),
    )
    with op.batch_alter_table("reading_day", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reading_day_pending"), ["pending"], unique=False)

    op.create_table(
        "iot_integration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_iot_integration_cooperative_id_cooperative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_iot_integration")),
        sa.UniqueConstraint("public_id", name=op.f("uq_iot_integration_public_id")),
    )
    with op.batch_alter_table("iot_integration", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_iot_integration_cooperative_id"), ["cooperative_id"], unique=False
        )

    op.create_table(
        "lorawan_uplink",
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_lorawan_uplink_device_id_device")
        ),
        sa.PrimaryKeyConstraint("dedup_key", name=op.f("pk_lorawan_uplink")),
    )
    with op.batch_alter_table("lorawan_uplink", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lorawan_uplink_device_id"), ["device_id"], unique=False
        )

    op.create_table(
        "alert_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=False),
        sa.Column("parcel_dkbm", sa.String(length=19), nullable=False),
        sa.Column("metric_id", sa.SmallInteger(), nullable=False),
        sa.Column("below", sa.Double(), nullable=True),
        sa.Column("above", sa.Double(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_alert_rule_cooperative_id_cooperative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rule")),
    )
    with op.batch_alter_table("alert_rule", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_rule_cooperative_id"), ["cooperative_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alert_rule_parcel_dkbm"), ["parcel_dkbm"], unique=False
        )

    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("parcel_dkbm", sa.String(length=19), nullable=False),
        sa.Column("metric_id", sa.SmallInteger(), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cooperative_id"], ["cooperative.id"], name=op.f("fk_alert_cooperative_id_cooperative")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_alert_device_id_device")
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rule.id"], name=op.f("fk_alert_rule_id_alert_rule")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
        sa.UniqueConstraint(
            "rule_id", "device_id", "time_ms", name=op.f("uq_alert_rule_id_device_id_time_ms")
        ),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_cooperative_id"), ["cooperative_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alert_rule_id"), ["rule_id"], unique=False)

    op.create_table(
        "metric_policy",
        sa.Column("metric_id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("policy", sa.String(length=8), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("metric_id", name=op.f("pk_metric_policy")),
    )


def downgrade() -> None:
    op.drop_table("metric_policy")
    op.drop_table("alert")
    op.drop_table("alert_rule")
    op.drop_table("lorawan_uplink")
    op.drop_table("iot_integration")
    op.drop_table("reading_day")
    op.drop_table("reading")
    op.drop_table("reading_seal")
    op.drop_table("device_installation")
    # Not in batch mode: SQLite (3.35+) drops a column in place, leaving api_token's key alone.
    op.drop_column("device", "retired_at")
    op.drop_column("device", "metrics")
