"""Foundation: regions, cooperatives, households, devices and API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 12:20:49.149891
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Parcel geometry lives in PostGIS on the scale path.
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "region",
        sa.Column("code", sa.String(length=14), nullable=False),
        sa.Column(
            "level",
            sa.Enum(
                "county",
                "township",
                "village",
                "group",
                name="regionlevel",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("parent_code", sa.String(length=14), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_code"], ["region.code"], name=op.f("fk_region_parent_code_region")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_region")),
    )
    with op.batch_alter_table("region", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_region_parent_code"), ["parent_code"], unique=False)

    op.create_table(
        "cooperative",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region_code", sa.String(length=14), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_cooperative_region_code_region")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cooperative")),
        sa.UniqueConstraint("uscc", name=op.f("uq_cooperative_uscc")),
    )
    with op.batch_alter_table("cooperative", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cooperative_region_code"), ["region_code"], unique=False
        )

    op.create_table(
        "device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("dev_eui", sa.String(length=16), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_device_cooperative_id_cooperative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device")),
        sa.UniqueConstraint("dev_eui", name=op.f("uq_device_dev_eui")),
    )
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_cooperative_id"), ["cooperative_id"], unique=False
        )

    op.create_table(
        "household",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cbfbm", sa.String(length=18), nullable=False),
        sa.Column("region_code", sa.String(length=14), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("cooperative_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_household_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_household_region_code_region")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household")),
        sa.UniqueConstraint("cbfbm", name=op.f("uq_household_cbfbm")),
    )
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_household_cooperative_id"), ["cooperative_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_household_region_code"), ["region_code"], unique=False)

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "admin", "manager", "farmer", "device", name="role", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("cooperative_id", sa.Integer(), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_api_token_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.id"], name=op.f("fk_api_token_device_id_device")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_api_token_household_id_household")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("public_id", name=op.f("uq_api_token_public_id")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_token_cooperative_id"), ["cooperative_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_api_token_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_api_token_household_id"), ["household_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_household_id"))
        batch_op.drop_index(batch_op.f("ix_api_token_device_id"))
        batch_op.drop_index(batch_op.f("ix_api_token_cooperative_id"))

    op.drop_table("api_token")
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_household_region_code"))
        batch_op.drop_index(batch_op.f("ix_household_cooperative_id"))

    op.drop_table("household")
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_cooperative_id"))

    op.drop_table("device")
    with op.batch_alter_table("cooperative", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cooperative_region_code"))

    op.drop_table("cooperative")
    with op.batch_alter_table("region", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_region_parent_code"))

    op.drop_table("region")
