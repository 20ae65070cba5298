"""Trace: each serialised item keeps the 查询码 printed under its QR code, indexed, so a code
typed on the landing page finds the item; existing items get theirs computed.

Revision ID: 0413_unit_short_codes
Revises: 0412_certificate_contact_salt
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.gs1.short_code import short_code

revision: str = "0413_unit_short_codes"
down_revision: str | None = "0412_certificate_contact_salt"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("trace_unit") as batch:
        batch.add_column(sa.Column("short_code", sa.String(length=9), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT u.id, u.gtin, l.lot, u.serial FROM trace_unit u "
            "JOIN trace_lot l ON l.id = u.lot_id ORDER BY u.id"
        )
    ).all()
    update = sa.text("UPDATE trace_unit SET short_code = :code WHERE id = :id")
    for start in range(0, len(rows), BATCH):
        connection.execute(
            update,
            [
                {"id": unit_id, "code": short_code(gtin, lot, serial)}
                for unit_id, gtin, lot, serial in rows[start : start + BATCH]
            ],
        )
    op.create_index("ix_trace_unit_short_code", "trace_unit", ["short_code"])


def downgrade() -> None:
    op.drop_index("ix_trace_unit_short_code", table_name="trace_unit")
    with op.batch_alter_table("trace_unit") as batch:
        batch.drop_column("short_code")
