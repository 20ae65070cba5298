"""Tables of the administrative tree, cooperatives and households."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow


class RegionLevel(enum.StrEnum):
    """Levels of the tree, by the length of their code."""

    COUNTY = "county"  # 6 digits, GB/T 2260
    TOWNSHIP = "township"  # 9 digits, statistical code
    VILLAGE = "village"  # 12 digits, statistical code
    GROUP = "group"  # 14 digits: village + 2-digit 村民小组


CODE_LENGTHS: dict[int, RegionLevel] = {
    6: RegionLevel.COUNTY,
    9: RegionLevel.TOWNSHIP,
    12: RegionLevel.VILLAGE,
    14: RegionLevel.GROUP,
}


class Region(Base):
    __tablename__ = "region"

    code: Mapped[str] = mapped_column(String(14), primary_key=True)
    level: Mapped[RegionLevel] = mapped_column(
        Enum(
            RegionLevel,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    name: Mapped[str] = mapped_column(String(100))
    parent_code: Mapped[str | None] = mapped_column(
        ForeignKey("region.code"), index=True, default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Cooperative(Base):
    """A 农民专业合作社 or other operator, identified by its 统一社会信用代码."""

    __tablename__ = "cooperative"

    id: Mapped[int] = mapped_column(primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Household(Base):
    """A farming household (承包方). Its name and phone are personal data, never shown publicly."""

    __tablename__ = "household"

    id: Mapped[int] = mapped_column(primary_key=True)
    # 承包方编码 (NY/T 2539): the 14-digit 发包方编码 + a 4-digit sequence.
    cbfbm: Mapped[str] = mapped_column(String(18), unique=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    cooperative_id: Mapped[int | None] = mapped_column(
        ForeignKey("cooperative.id"), index=True, default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # From the county's 确权 package (NY/T 2539 CBF); None for households entered here.
    kind: Mapped[str | None] = mapped_column(String(1), default=None)  # CBFLX 1 农户 2 个人 3 单位
    id_type: Mapped[str | None] = mapped_column(String(1), default=None)  # CBFZJLX, personal
    id_number: Mapped[str | None] = mapped_column(String(30), default=None)  # CBFZJHM, personal
    # The CBF row as the package had it (address, postcode, survey…): personal, never public.
    registry_record: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # SHA-256 of the package's CBF and CBF_JTCY rows: an unchanged household is left alone.
    source_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # The ledger entry of the household's last recorded registration or change. No foreign
    # key: SQLite can add a plain column in place, and household is referred to by many tables.
    ledger_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)


class HouseholdMember(Base):
    """A member of a household (NY/T 2539 CBF_JTCY). Personal data: never public."""

    __tablename__ = "household_member"

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("household.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # order in the package
    name: Mapped[str] = mapped_column(String(50))  # CYXM
    sex: Mapped[str | None] = mapped_column(String(1), default=None)  # CYXB 1 男 2 女
    id_type: Mapped[str | None] = mapped_column(String(1), default=None)  # CYZJLX
    id_number: Mapped[str | None] = mapped_column(String(30), default=None)  # CYZJHM
    relation: Mapped[str | None] = mapped_column(String(2), default=None)  # YHZGX
    co_owner: Mapped[bool | None] = mapped_column(default=None)  # SFGYR
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # the row as the package had it


class Collective(Base):
    """A 发包方 (NY/T 2539 FBF): the group or village collective that contracts land out.

    Its region is the group (or, with group 00, the village) of the same code."""

    __tablename__ = "collective"

    fbfbm: Mapped[str] = mapped_column(String(14), primary_key=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # FBFMC
    # The FBF row (负责人, 证件号码, 地址…): personal, never public.
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    surveyed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    source_sha256: Mapped[str] = mapped_column(String(64))
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
