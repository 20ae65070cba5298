"""Trace: an event's type may be a URI (an extension event type), not only one of the five
standard names.

Revision ID: 0411_event_type
Revises: 0410_declarations
Create Date: 2026-12-07 06:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0411_event_type"
down_revision: str | None = "0410_declarations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trace_event", schema=None) as batch_op:
        batch_op.alter_column(
            "event_type", existing_type=sa.String(length=24), type_=sa.String(length=300)
        )


def downgrade() -> None:
    with op.batch_alter_table("trace_event", schema=None) as batch_op:
        batch_op.alter_column(
            "event_type", existing_type=sa.String(length=300), type_=sa.String(length=24)
        )
