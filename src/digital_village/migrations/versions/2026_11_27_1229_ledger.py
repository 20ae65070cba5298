"""Ledger: entries stored verbatim, stored tree hashes, signed checkpoints and verifier keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:29:43.392727
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_checkpoint",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_ledger_checkpoint")),
    )
    op.create_table(
        "ledger_entry",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("chain_key", sa.String(length=200), nullable=True),
        sa.Column("chain_prev_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain_prev_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_ledger_entry_chain_prev_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_entry")),
    )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entry_chain_key"), ["chain_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entry_kind"), ["kind"], unique=False)

    op.create_table(
        "ledger_hash",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_ledger_hash")),
    )
    op.create_table(
        "ledger_key",
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("vkey", sa.String(length=300), nullable=False),
        sa.Column("first_size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_ledger_key")),
    )


def downgrade() -> None:
    op.drop_table("ledger_key")
    op.drop_table("ledger_hash")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entry_kind"))
        batch_op.drop_index(batch_op.f("ix_ledger_entry_chain_key"))

    op.drop_table("ledger_entry")
    op.drop_table("ledger_checkpoint")
