"""Pages: scans of serialised items' labels, for spotting copied labels.

Revision ID: 0006
Revises: 0001
Depends on: 0002
Create Date: 2026-11-27 14:00:00

Items are referred to by their public codes (GTIN-14 and serial), not by a row of the chain's
tables, so this branch needs nothing but the foundation.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0002"


def upgrade() -> None:
    op.create_table(
        "web_scan",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=False),
        sa.Column("serial", sa.String(length=20), nullable=False),
        sa.Column("scanned_at", UTCDateTime(), nullable=False),
        sa.Column("network", sa.String(length=43), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_scan")),
    )
    op.create_index(
        "ix_web_scan_item_time", "web_scan", ["gtin", "serial", "scanned_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_web_scan_item_time", table_name="web_scan")
    op.drop_table("web_scan")
