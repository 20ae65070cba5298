"""Trace: a certificate's issue entry records its contact salted and hashed; the salt is kept
in the row.

Revision ID: 0412_certificate_contact_salt
Revises: 0411_event_type
Create Date: 2026-12-08 09:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0412_certificate_contact_salt"
down_revision: str | None = "0411_event_type"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trace_certificate") as batch:
        batch.add_column(sa.Column("contact_salt", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trace_certificate") as batch:
        batch.drop_column("contact_salt")
