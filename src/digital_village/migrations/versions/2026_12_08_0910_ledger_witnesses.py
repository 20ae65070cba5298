"""Ledger: the witnesses the log asks to cosign its checkpoints, and their cosignatures.

Revision ID: 1405_ledger_witnesses
Revises: 1404_parcel_geometry
Create Date: 2026-12-08 09:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "1405_ledger_witnesses"
down_revision: str | None = "1404_parcel_geometry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_witness",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("vkey", sa.String(length=300), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("known_size", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_contact", UTCDateTime(), nullable=True),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_witness")),
    )
    op.create_table(
        "ledger_cosignature",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=100), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("line", sa.String(length=300), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("size", "witness", name=op.f("pk_ledger_cosignature")),
    )


def downgrade() -> None:
    op.drop_table("ledger_cosignature")
    op.drop_table("ledger_witness")
