"""Wire shapes of the parcel routes. Parcels themselves travel as GeoJSON Features (dicts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CropIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    season: str = Field(description="2026-summer (大春, May-Sep) or 2026-winter (小春, Oct-Apr)")
    crop: str = Field(min_length=1, max_length=40, examples=["油菜"])


class ParcelIn(BaseModel):
    """One parcel to register; its DKBM is assigned by the registry."""

    model_config = ConfigDict(extra="forbid")

    fbfbm: str = Field(description="发包方编码, 14 digits", examples=["51060310120101"])
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon")
    crs: str | None = Field(
        default=None, description="EPSG:NNNN, gcj02 or bd09; default lon/lat (RFC 7946)"
    )
    land_use: str = Field(description="GB/T 21010 class", examples=["0101"])
    name: str | None = Field(default=None, max_length=50, description="地块名称")
    bdcdyh: str | None = Field(default=None, description="不动产单元代码, 28 characters")
    contractor_household_id: int | None = None
    operator_cooperative_id: int | None = None
    crops: list[CropIn] = Field(default_factory=list)
    repair: bool = Field(default=False, description="repair invalid geometry and report it")
    valid_from: dt.date | None = None


class ChangeIn(BaseModel):
    """Changes from ``valid_from`` (default today). Holders given together replace both."""

    model_config = ConfigDict(extra="forbid")

    valid_from: dt.date | None = None
    contractor_household_id: int | None = Field(default=None, description="承包方 household")
    operator_cooperative_id: int | None = Field(default=None, description="经营方 cooperative")
    land_use: str | None = None
    crop: CropIn | None = None
    bdcdyh: str | None = None
    correction: str | None = Field(
        default=None,
        min_length=3,
        max_length=500,
        description="admin only: why this change starts on or before events already recorded "
        "on the parcel; it is recorded on the ledger with the change",
    )


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[dict[str, Any]] = Field(min_length=2, description="GeoJSON polygons")
    crs: str | None = None
    valid_from: dt.date | None = None
    correction: str | None = Field(
        default=None,
        min_length=3,
        max_length=500,
        description="admin only: why this change starts on or before events already recorded "
        "on the parcel; it is recorded on the ledger with the change",
    )


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dkbms: list[str] = Field(min_length=2, max_length=100)
    valid_from: dt.date | None = None
    correction: str | None = Field(
        default=None,
        min_length=3,
        max_length=500,
        description="admin only: why this change starts on or before events already recorded "
        "on the parcel; it is recorded on the ledger with the change",
    )


class CreatedOut(BaseModel):
    feature: int
    dkbm: str
    area_m2: float
    area_mu: float
    warnings: list[str] = Field(default_factory=list)


class RejectedOut(BaseModel):
    feature: int
    reason: str


class ImportReportOut(BaseModel):
    created: list[CreatedOut]
    rejected: list[RejectedOut]
    stored: bool
    already_imported: dict[str, Any] | None = None
