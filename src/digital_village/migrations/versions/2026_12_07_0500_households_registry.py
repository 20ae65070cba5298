"""Households from the county's 确权 package: their NY/T 2539 record, members, collectives.

Revision ID: 1401_households
Revises: 0001
Depends on: 0002 (collectives point at their ledger entries)
Create Date: 2026-12-07 05:00:00

New nullable columns on ``household`` (added in place, so the foreign keys that point at it are
untouched), ``household_member`` (CBF_JTCY) and ``collective`` (FBF).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1401_households"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0002"


def upgrade() -> None:
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("id_type", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("id_number", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("registry_record", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("source_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("ledger_seq", sa.BigInteger(), nullable=True))
    op.create_table(
        "household_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("id_type", sa.String(length=1), nullable=True),
        sa.Column("id_number", sa.String(length=30), nullable=True),
        sa.Column("relation", sa.String(length=2), nullable=True),
        sa.Column("co_owner", sa.Boolean(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_household_member_household_id_household"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_member")),
    )
    with op.batch_alter_table("household_member", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_household_member_household_id"), ["household_id"], unique=False
        )
    op.create_table(
        "collective",
        sa.Column("fbfbm", sa.String(length=14), nullable=False),
        sa.Column("region_code", sa.String(length=14), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("surveyed_on", sa.Date(), nullable=True),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ledger_seq"], ["ledger_entry.seq"], name=op.f("fk_collective_ledger_seq_ledger_entry")
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["region.code"], name=op.f("fk_collective_region_code_region")
        ),
        sa.PrimaryKeyConstraint("fbfbm", name=op.f("pk_collective")),
    )
    with op.batch_alter_table("collective", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_collective_region_code"), ["region_code"], unique=False
        )


def downgrade() -> None:
    op.drop_table("collective")
    op.drop_table("household_member")
    with op.batch_alter_table("household", schema=None) as batch_op:
        for name in ("ledger_seq", "source_sha256", "registry_record", "id_number", "id_type"):
            batch_op.drop_column(name)
        batch_op.drop_column("kind")
