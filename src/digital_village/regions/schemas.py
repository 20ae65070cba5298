"""Wire shapes of regions, cooperatives and households."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from digital_village.regions.models import RegionLevel


class RegionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        description="9-digit township, 12-digit village or 14-digit group code",
        examples=["510603101"],
    )
    name: str = Field(min_length=1, max_length=100, examples=["孝泉镇"])


class RegionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    level: RegionLevel
    name: str
    parent_code: str | None


class CooperativeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uscc: str = Field(description="统一社会信用代码, 18 characters", min_length=18, max_length=18)
    name: str = Field(min_length=1, max_length=200)
    region_code: str = Field(description="the township or village it is registered in")


class CooperativeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    uscc: str
    name: str
    region_code: str


class HouseholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region_code: str = Field(description="the 12-digit village or 14-digit group it contracts in")
    name: str = Field(min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    cooperative_id: int | None = Field(default=None, description="the cooperative it belongs to")


class HouseholdContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, max_length=32)


class HouseholdOut(BaseModel):
    """A household as its cooperative and the administration see it (never public)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    cbfbm: str = Field(description="承包方编码")
    region_code: str
    name: str
    phone: str | None
    cooperative_id: int | None
    created_at: dt.datetime
