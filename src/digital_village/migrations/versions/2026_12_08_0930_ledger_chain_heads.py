"""Ledger: entries indexed by (chain key, index), so a chain's last entry is one index seek.

Revision ID: 1406_ledger_chain_heads
Revises: 1405_ledger_witnesses
Create Date: 2026-12-08 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "1406_ledger_chain_heads"
down_revision: str | None = "1405_ledger_witnesses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An append reads the head of the chain it extends; with the chain key alone indexed, that
    # read sorted every entry of the chain (a lot's whole history) on each append.
    op.create_index("ix_ledger_entry_chain_key_seq", "ledger_entry", ["chain_key", "seq"])
    op.drop_index("ix_ledger_entry_chain_key", table_name="ledger_entry")


def downgrade() -> None:
    op.create_index("ix_ledger_entry_chain_key", "ledger_entry", ["chain_key"])
    op.drop_index("ix_ledger_entry_chain_key_seq", table_name="ledger_entry")
