"""Tables of the pages: scans of serialised items' labels (for spotting copied labels).

A scan refers to its item by its public codes (GTIN-14 and serial, AI 21), not by a row id of
the chain's tables, so this capability's migration branch stays independent of theirs.
Nothing identifying a person is stored: the client's address is cut to its network (IPv4 /24,
IPv6 /48) and a location, given only with the reader's consent, is rounded to 0.1° (~10 km).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Double, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Scan(Base):
    """One scan of a serialised item's label: when, from which network, roughly where."""

    __tablename__ = "web_scan"
    __table_args__ = (Index("ix_web_scan_item_time", "gtin", "serial", "scanned_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gtin: Mapped[str] = mapped_column(String(14))
    serial: Mapped[str] = mapped_column(String(20))
    scanned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    network: Mapped[str | None] = mapped_column(String(43), default=None)
    lat: Mapped[float | None] = mapped_column(Double, default=None)
    lon: Mapped[float | None] = mapped_column(Double, default=None)
