"""What a parcel's chain of ledger entries (``parcel:<dkbm>``) records of it.

``parcel.registered`` records the code, the 发包方编码, the area (m², 亩), the land use, the
geometry's SHA-256, the holders by code (承包方编码, the operating cooperative's 统一社会信用代码)
and, from the version that records them, the season crops (``crops``: season → crop);
``parcel.changed`` records new holders, land use, a season's crop or the 不动产单元代码 from
``valid_from``, or a resurveyed shape under the same code (``geometry_sha256`` with the code,
the 发包方编码 and the area, as a registration records them); ``parcel.split`` /
``parcel.merged`` retire it. The newest entry that records a shape is the one the parcel's
current shape and area are checked against; older ones vouch for the shapes kept in history.
:func:`fold` reads a chain into a :class:`ParcelRecord`, so a page can name, for each fact it
shows, the entry (and the JSON pointer in it) that records it, and the audit can compare the
parcel's rows with it.

Pure: no database, no web.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from digital_village.jsonpointer import pointer

REGISTERED: Final = "parcel.registered"
CHANGED: Final = "parcel.changed"
RETIRED: Final = frozenset({"parcel.split", "parcel.merged"})


def chain_key(dkbm: str) -> str:
    return f"parcel:{dkbm}"


@dataclass(frozen=True)
class Recorded:
    """One value and where the ledger records it."""

    value: Any
    seq: int
    pointer: str


@dataclass(frozen=True)
class RecordedHolding:
    """A holding period as an entry records it (codes, not row ids)."""

    valid_from: str
    contractor: str | None
    operator: str | None
    seq: int


@dataclass
class ParcelRecord:
    """A parcel as its chain of entries records it."""

    dkbm: str
    registered_seq: int | None = None
    registration: Mapping[str, Any] = field(default_factory=dict)
    land_use: Recorded | None = None
    # season → the crop recorded last for it
    crops: dict[str, Recorded] = field(default_factory=dict)
    holdings: list[RecordedHolding] = field(default_factory=list)
    retired_seq: int | None = None
    # Crops are in registration entries from the version that records them.
    registration_records_crops: bool = False
    # Every entry of the chain: index → (kind, data).
    entries: dict[int, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    # The entries that record a shape (the registration, then resurveys): index order.
    shapes: list[tuple[int, Mapping[str, Any]]] = field(default_factory=list)

    def registered(self, name: str) -> Recorded | None:
        """A field of the registration entry (``area_mu``, ``geometry_sha256``, …)."""
        if self.registered_seq is None or name not in self.registration:
            return None
        return Recorded(self.registration[name], self.registered_seq, f"/data/{name}")

    @property
    def shape_seq(self) -> int | None:
        """The entry recording the current shape: the newest resurvey, else the registration."""
        return self.shapes[-1][0] if self.shapes else self.registered_seq

    def shaped(self, name: str) -> Recorded | None:
        """A field of the entry recording the current shape (``geometry_sha256``, ``area_mu``,
        ``dkbm``, ``fbfbm``, …)."""
        if self.shapes:
            seq, data = self.shapes[-1]
            return Recorded(data[name], seq, f"/data/{name}") if name in data else None
        return self.registered(name)

    def crop_on(self, season_of: Any, on: dt.date) -> Recorded | None:
        """The crop recorded for the season holding ``on`` (``season_of(label)`` → period)."""
        for season, recorded in self.crops.items():
            try:
                start, end = season_of(season)
            except ValueError:
                continue
            if start <= on < end:
                return recorded
        return None


def fold(dkbm: str, entries: Iterable[tuple[int, str, Mapping[str, Any]]]) -> ParcelRecord:
    """The record of a parcel from its chain's (index, kind, data), in index order."""
    record = ParcelRecord(dkbm)
    for seq, kind, data in entries:
        record.entries[seq] = (kind, data)
        if kind == REGISTERED and record.registered_seq is None:
            record.registered_seq = seq
            record.registration = data
            if "geometry_sha256" in data:
                record.shapes.append((seq, data))
            record.registration_records_crops = "crops" in data
            crops = data.get("crops")
            if isinstance(crops, dict):
                for season, crop in crops.items():
                    record.crops[season] = Recorded(crop, seq, pointer("data", "crops", season))
        elif kind != CHANGED:
            if kind in RETIRED:
                record.retired_seq = seq
            continue
        if kind == CHANGED and "geometry_sha256" in data:
            record.shapes.append((seq, data))
        if "land_use" in data:
            record.land_use = Recorded(data["land_use"], seq, "/data/land_use")
        crop = data.get("crop")
        if kind == CHANGED and isinstance(crop, dict) and isinstance(crop.get("season"), str):
            record.crops[crop["season"]] = Recorded(crop.get("crop"), seq, "/data/crop/crop")
        if kind == REGISTERED or "contractor" in data or "operator" in data:
            if kind == REGISTERED and "contractor" not in data and "operator" not in data:
                continue
            record.holdings.append(
                RecordedHolding(
                    str(data.get("valid_from")), data.get("contractor"), data.get("operator"), seq
                )
            )
    return record
