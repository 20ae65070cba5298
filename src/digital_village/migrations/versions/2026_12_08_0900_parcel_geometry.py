"""Parcels: the shapes a parcel had before a resurvey under the same DKBM.

Revision ID: 1404_parcel_geometry
Revises: 1403_registered_area
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "1404_parcel_geometry"
down_revision: str | None = "1403_registered_area"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parcel_geometry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parcel_id", sa.Integer(), nullable=False),
        sa.Column("geometry_wkb", sa.LargeBinary(), nullable=False),
        sa.Column("geometry_sha256", sa.String(length=64), nullable=False),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("area_mu", sa.Double(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_parcel_geometry_ledger_seq_ledger_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcel.id"], name=op.f("fk_parcel_geometry_parcel_id_parcel")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcel_geometry")),
    )
    op.create_index(
        op.f("ix_parcel_geometry_parcel_id"), "parcel_geometry", ["parcel_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_parcel_geometry_parcel_id"), table_name="parcel_geometry")
    op.drop_table("parcel_geometry")
