"""Trace: declaration rows are marked, so an errorDeclaration can be stored before the event
it declares erroneous has arrived.

Revision ID: 0410_declarations
Revises: 0004
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0410_declarations"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trace_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("declaration", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Every errorDeclaration stored so far named an event it was stored with.
    op.execute("UPDATE trace_event SET declaration = TRUE WHERE declares_pk IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("trace_event", schema=None) as batch_op:
        batch_op.drop_column("declaration")
