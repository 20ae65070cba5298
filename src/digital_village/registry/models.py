"""Tables of the county's 确权 registry as this system keeps it: contracts (CBHT with their
CBJYQZ certificate), the parcels each contract covers (CBDKXX), the DK layer's own record of
each parcel, and the packages imported.

Parcels are referred to by DKBM (the parcels capability owns their rows); households by id.
Periods are ``[valid_from, valid_to)``; a re-import closes a period and opens the next, so
nothing is overwritten and nothing deleted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Double, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow


class LandContract(Base):
    """A 承包合同 (CBHT) under its 19-character code, with its 经营权证 (CBJYQZ) if issued."""

    __tablename__ = "land_contract"

    id: Mapped[int] = mapped_column(primary_key=True)
    cbhtbm: Mapped[str] = mapped_column(String(19), unique=True)
    fbfbm: Mapped[str] = mapped_column(String(14), index=True)
    cbfbm: Mapped[str] = mapped_column(String(18), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    method: Mapped[str] = mapped_column(String(3))  # CBFS, NY/T 2539 table C.10
    period_from: Mapped[dt.date | None] = mapped_column(Date, default=None)  # CBQXQ
    period_to: Mapped[dt.date | None] = mapped_column(Date, default=None)  # CBQXZ
    area_m2: Mapped[float] = mapped_column(Double)  # HTZMJ
    parcel_count: Mapped[int] = mapped_column(Integer)  # CBDKZS
    signed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)  # QDSJ
    certificate: Mapped[str | None] = mapped_column(String(19), default=None)  # CBJYQZBM
    # The CBHT and CBJYQZ rows as the package had them.
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date, default=None)
    # SHA-256 of the contract's CBHT, CBJYQZ and CBDKXX rows: unchanged means left alone.
    source_sha256: Mapped[str] = mapped_column(String(64))
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContractParcel(Base):
    """A parcel under a contract (CBDKXX) over a period: area, how it was acquired, 确权确股."""

    __tablename__ = "contract_parcel"

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("land_contract.id"), index=True)
    dkbm: Mapped[str] = mapped_column(String(19), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    acquired_by: Mapped[str] = mapped_column(String(3))  # CBJYQQDFS, table C.10
    area_m2: Mapped[float] = mapped_column(Double)  # HTMJ
    by_share: Mapped[bool | None] = mapped_column(Boolean, default=None)  # SFQQQG 确权确股
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # the CBDKXX row
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date, default=None)
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )


class RegistryParcel(Base):
    """The DK layer's record of a parcel: its NY/T 2539 attributes as the package had them.

    ZJRXM (the name of who pointed out the boundary) is personal: never public."""

    __tablename__ = "registry_parcel"

    dkbm: Mapped[str] = mapped_column(String(19), primary_key=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SHA-256 of the feature as read (geometry bytes in the file's CRS and its attributes).
    source_sha256: Mapped[str] = mapped_column(String(64))
    retired_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegistryImport(Base):
    """One import of a package, with what it did."""

    __tablename__ = "registry_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    package: Mapped[str] = mapped_column(String(255))
    package_sha256: Mapped[str] = mapped_column(String(64), index=True)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
