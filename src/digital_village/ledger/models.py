"""Tables of the ledger: entries (bytes stored verbatim), stored tree hashes, checkpoints, keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow


class LedgerEntry(Base):
    """One log entry. ``body`` holds the RFC 8785 bytes exactly as hashed; never re-serialised."""

    __tablename__ = "ledger_entry"
    # A chain's last entry in one index seek (what each append that extends a chain reads).
    __table_args__ = (Index("ix_ledger_entry_chain_key_seq", "chain_key", "seq"),)

    # The leaf index in the Merkle tree: 0, 1, 2, ... with no gaps (the primary key forbids forks).
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The previous entry's leaf hash (also inside ``body``): the log is a hash chain as well.
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    # Entries about one thing (a product batch, a parcel) form their own chain.
    chain_key: Mapped[str | None] = mapped_column(String(200), default=None)
    chain_prev_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerHash(Base):
    """A complete subtree hash at its stable storage index (about two per entry)."""

    __tablename__ = "ledger_hash"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerCheckpoint(Base):
    """A signed C2SP checkpoint. Every one published is kept."""

    __tablename__ = "ledger_checkpoint"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerKey(Base):
    """A verifier key that has signed checkpoints, from the tree size where it started."""

    __tablename__ = "ledger_key"

    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    vkey: Mapped[str] = mapped_column(String(300))
    first_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerWitness(Base):
    """A witness the log asks to cosign its checkpoints (C2SP tlog-witness).

    Verifiers do not take their witness keys from here: they hold their own policy.
    """

    __tablename__ = "ledger_witness"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    vkey: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(String(500))
    # The size this witness last cosigned (or told us it knows): the next request's old size.
    known_size: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    last_contact: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerCosignature(Base):
    """A witness's cosignature line on the checkpoint of one tree size."""

    __tablename__ = "ledger_cosignature"

    # The checkpoint's tree size (no foreign key: checkpoints are kept for ever anyway).
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(100), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(8))
    # ``— <name> base64(key ID ‖ timestamp ‖ signature)``, without its newline.
    line: Mapped[str] = mapped_column(String(300))
    signed_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
