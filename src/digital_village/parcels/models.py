"""Tables of the map: parcels, their code sequences, attribute history, lineage and imports.

Nothing here is ever deleted. A split or a merge retires the code and registers new ones,
linked by ``parcel_lineage``. A resurvey the county's registry records under the same DKBM
replaces the parcel's shape from a date: the shape it replaces is kept in ``parcel_geometry``.
Attributes that change over time (contractor, operator, land use, crop) are rows with a valid
period ``[valid_from, valid_to)``; a closed period keeps its row.

Spatial indexes live outside the ORM, created by the migration: on SQLite an R*Tree virtual
table ``parcel_rtree`` kept in step by triggers; on PostgreSQL a PostGIS column ``geom`` filled
from ``geometry_wkb`` by a trigger, with a GiST index.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Date, Double, Enum, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow


class ParcelStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class Parcel(Base):
    """A contracted land parcel (承包地块) under its 19-digit DKBM."""

    __tablename__ = "parcel"

    id: Mapped[int] = mapped_column(primary_key=True)
    dkbm: Mapped[str] = mapped_column(String(19), unique=True)
    fbfbm: Mapped[str] = mapped_column(String(14), index=True)
    township_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    village_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    # None when the village itself contracts (FBFBM group 00).
    group_code: Mapped[str | None] = mapped_column(ForeignKey("region.code"), default=None)
    name: Mapped[str | None] = mapped_column(String(50), default=None)  # 地块名称 DKMC
    bdcdyh: Mapped[str | None] = mapped_column(String(28), default=None)  # 不动产单元代码
    land_use: Mapped[str] = mapped_column(String(4))  # GB/T 21010, current value
    status: Mapped[ParcelStatus] = mapped_column(
        Enum(
            ParcelStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        index=True,
    )
    area_m2: Mapped[float] = mapped_column(Double)
    area_mu: Mapped[float] = mapped_column(Double)
    area_ha: Mapped[float] = mapped_column(Double)
    geodesic_m2: Mapped[float] = mapped_column(Double)
    epsg: Mapped[int] = mapped_column(Integer)  # the GK zone the area was computed in
    # ISO WKB, lon/lat CGCS2000, snapped and oriented as prepare_parcel returned it.
    geometry_wkb: Mapped[bytes] = mapped_column(LargeBinary)
    # SHA-256 of geometry_wkb; also in the ledger entry, so an edit of the stored bytes shows.
    geometry_sha256: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the normalized shape: the same field imported twice has the same fingerprint.
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    min_lon: Mapped[float] = mapped_column(Double)
    min_lat: Mapped[float] = mapped_column(Double)
    max_lon: Mapped[float] = mapped_column(Double)
    max_lat: Mapped[float] = mapped_column(Double)
    sliver_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    # The county's surveyed area (NY/T 2539 SCMJ), beside ours; and why they disagree, if so.
    registered_area_m2: Mapped[float | None] = mapped_column(Double, default=None)
    area_note: Mapped[str | None] = mapped_column(String(200), default=None)
    # The ledger entry of the last recorded change of this parcel.
    last_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class ParcelSequence(Base):
    """The last 5-digit sequence handed out under an FBFBM: codes are never reused."""

    __tablename__ = "parcel_sequence"

    fbfbm: Mapped[str] = mapped_column(String(14), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(Integer)


class ParcelHolding(Base):
    """Who holds a parcel over a period: the contractor household (承包方) and the operator
    (经营方, e.g. a cooperative the land was transferred to, 流转)."""

    __tablename__ = "parcel_holding"

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcel.id"), index=True)
    contractor_household_id: Mapped[int | None] = mapped_column(
        ForeignKey("household.id"), index=True, default=None
    )
    operator_cooperative_id: Mapped[int | None] = mapped_column(
        ForeignKey("cooperative.id"), index=True, default=None
    )
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date, default=None)  # exclusive
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParcelAttribute(Base):
    """A land use (GB/T 21010) or a crop of one season, valid over a period."""

    __tablename__ = "parcel_attribute"

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcel.id"), index=True)
    name: Mapped[str] = mapped_column(String(16))  # "land_use" or "crop"
    value: Mapped[str] = mapped_column(String(40))
    season: Mapped[str | None] = mapped_column(String(16), default=None)  # "2026-summer"
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date, default=None)  # exclusive
    # A correction of the same season keeps the old row, marked superseded.
    superseded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParcelGeometry(Base):
    """A shape a parcel had before a resurvey under the same DKBM, over ``[valid_from,
    valid_to)``, with the ledger entry that recorded it (its registration or an earlier
    resurvey). The parcel row holds the current shape."""

    __tablename__ = "parcel_geometry"

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcel.id"), index=True)
    geometry_wkb: Mapped[bytes] = mapped_column(LargeBinary)
    geometry_sha256: Mapped[str] = mapped_column(String(64))
    area_m2: Mapped[float] = mapped_column(Double)
    area_mu: Mapped[float] = mapped_column(Double)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date] = mapped_column(Date)  # exclusive: the resurvey's date
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParcelLineage(Base):
    """A retired parcel and one parcel made from it by a split or a merge."""

    __tablename__ = "parcel_lineage"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parcel.id"), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("parcel.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # "split" or "merge"
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParcelImport(Base):
    """One imported file, recognised by its content hash when it comes again."""

    __tablename__ = "parcel_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    fbfbm: Mapped[str] = mapped_column(String(14))
    created: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
