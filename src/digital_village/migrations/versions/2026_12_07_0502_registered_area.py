"""Parcels: the county's surveyed area (SCMJ) beside the computed one, and a note when they
disagree.

Revision ID: 1403_registered_area
Revises: 0003
Create Date: 2026-12-07 05:02:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1403_registered_area"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("parcel", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registered_area_m2", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("area_note", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("parcel", schema=None) as batch_op:
        batch_op.drop_column("area_note")
        batch_op.drop_column("registered_area_m2")
