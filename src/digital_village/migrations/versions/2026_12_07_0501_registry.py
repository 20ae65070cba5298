"""The 确权 registry: contracts, the parcels they cover, the DK layer's records, imports.

Revision ID: 1402_registry
Revises: 1401_households
Create Date: 2026-12-07 05:01:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "1402_registry"
down_revision: str | None = "1401_households"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ledger_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["ledger_seq"], ["ledger_entry.seq"], name=op.f(f"fk_{table}_ledger_seq_ledger_entry")
    )


def _household_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["household_id"], ["household.id"], name=op.f(f"fk_{table}_household_id_household")
    )


def upgrade() -> None:
    op.create_table(
        "land_contract",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cbhtbm", sa.String(length=19), nullable=False),
        sa.Column("fbfbm", sa.String(length=14), nullable=False),
        sa.Column("cbfbm", sa.String(length=18), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=3), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=True),
        sa.Column("period_to", sa.Date(), nullable=True),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("parcel_count", sa.Integer(), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=True),
        sa.Column("certificate", sa.String(length=19), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _household_fk("land_contract"),
        _ledger_fk("land_contract"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_land_contract")),
        sa.UniqueConstraint("cbhtbm", name=op.f("uq_land_contract_cbhtbm")),
    )
    with op.batch_alter_table("land_contract", schema=None) as batch_op:
        for column in ("fbfbm", "cbfbm", "household_id", "active"):
            batch_op.create_index(batch_op.f(f"ix_land_contract_{column}"), [column], unique=False)
    op.create_table(
        "contract_parcel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=False),
        sa.Column("dkbm", sa.String(length=19), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("acquired_by", sa.String(length=3), nullable=False),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("by_share", sa.Boolean(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["land_contract.id"],
            name=op.f("fk_contract_parcel_contract_id_land_contract"),
        ),
        _household_fk("contract_parcel"),
        _ledger_fk("contract_parcel"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_parcel")),
    )
    with op.batch_alter_table("contract_parcel", schema=None) as batch_op:
        for column in ("contract_id", "dkbm", "household_id"):
            batch_op.create_index(
                batch_op.f(f"ix_contract_parcel_{column}"), [column], unique=False
            )
    op.create_table(
        "registry_parcel",
        sa.Column("dkbm", sa.String(length=19), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("retired_on", sa.Date(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dkbm", name=op.f("pk_registry_parcel")),
    )
    op.create_table(
        "registry_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_import")),
    )
    with op.batch_alter_table("registry_import", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_import_package_sha256"), ["package_sha256"], unique=False
        )


def downgrade() -> None:
    for table in ("registry_import", "registry_parcel", "contract_parcel", "land_contract"):
        op.drop_table(table)
