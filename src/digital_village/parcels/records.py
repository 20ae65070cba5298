"""What a parcel registration takes and reports: the records every step passes along."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from digital_village.parcels import geometry


@dataclass(frozen=True)
class Contractor:
    """An FBFBM checked against the administrative tree."""

    fbfbm: str
    township_code: str
    village_code: str
    group_code: str | None


@dataclass(frozen=True)
class ParcelIn:
    """One parcel to register: raw geometry and attributes, checked by ``register_many``."""

    geometry: Any
    land_use: str
    fbfbm: str | None = None  # None: the FBFBM given to register_many
    name: str | None = None
    bdcdyh: str | None = None
    contractor_household_id: int | None = None
    operator_cooperative_id: int | None = None
    crops: tuple[tuple[str, str], ...] = ()  # (season label, crop)
    dkbm: str | None = None  # the file's own 地块编码, kept; None: the next free one
    registered_area_m2: float | None = None  # the county's surveyed area (SCMJ)


@dataclass(frozen=True)
class Created:
    feature: int
    dkbm: str
    area_m2: float
    area_mu: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejected:
    feature: int
    reason: str


@dataclass
class RegisterReport:
    """What a registration did: parcels created and features rejected, each with its index."""

    created: list[Created] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    stored: bool = True
    already_imported: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": [
                {
                    "feature": c.feature,
                    "dkbm": c.dkbm,
                    "area_m2": round(c.area_m2, 2),
                    "area_mu": round(c.area_mu, 4),
                    **({"warnings": list(c.warnings)} if c.warnings else {}),
                }
                for c in self.created
            ],
            "rejected": [{"feature": r.feature, "reason": r.reason} for r in self.rejected],
            "stored": self.stored,
            **({"already_imported": self.already_imported} if self.already_imported else {}),
        }


@dataclass
class Candidate:
    feature: int
    item: ParcelIn
    contractor: Contractor
    shape: geometry.ParcelShape
    crops: list[tuple[str, str, dt.date, dt.date]]
