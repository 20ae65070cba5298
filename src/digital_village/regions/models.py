"""Tables of the administrative tree, cooperatives and households."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String
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
