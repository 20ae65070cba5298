"""Where a lot came from, as a consumer page and a parcel page show it: the parcels it was
harvested on with their places, area, land use, crop, grower and shape, and a map.

Each fact is claimed against the entry of the parcel's chain (``parcel:<dkbm>``, folded by
``parcels.recorded``) or of the harvest that records it (web/facts.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

import shapely
from sqlalchemy.orm import Session

from digital_village.errors import DomainError
from digital_village.jsonpointer import pointer
from digital_village.ledger import reads
from digital_village.parcels import geometry, landuse
from digital_village.parcels import recorded as parcel_records
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from digital_village.trace import recorded
from digital_village.web import drawing, facts, history
from digital_village.web.facts import UNBOUND, Fact

CROP_BEFORE_HARVEST: Final = dt.timedelta(days=45)


class _Regions:
    """Region names by code, looked up once per page."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.names: dict[str, str] = {}

    def name(self, code: str | None) -> str:
        if not code:
            return ""
        if code not in self.names:
            try:
                self.names[code] = regions.get_region(session=self.session, code=code).name
            except DomainError:
                self.names[code] = code
        return self.names[code]


@dataclass(frozen=True)
class ParcelInfo:
    dkbm: str
    label: str
    township: str
    village: str
    group: str
    area_mu: float
    land_use: str
    land_use_en: str
    crop: str | None
    crop_en: str | None
    holder: str | None  # masked name
    operator: str | None  # cooperative name
    # The registration entry: code, 发包方, shape (SHA-256 of the stored geometry); and the
    # entries of the area, land use, crop and grower shown.
    code_fact: Fact = UNBOUND
    area_fact: Fact = UNBOUND
    land_use_fact: Fact = UNBOUND
    crop_fact: Fact = UNBOUND
    holder_fact: Fact = UNBOUND


@dataclass(frozen=True)
class Harvest:
    when: dt.datetime
    seq: int  # the harvest event's entry


def harvest_times(chain: history.Chain) -> dict[str, Harvest]:
    """Parcel → its harvest (the latest, for this trace), as the harvest's entry records it."""
    found: dict[str, Harvest] = {}
    for edge in chain.edges:
        if edge["type"] == "harvested_into" and edge.get("event") in chain.nodes:
            node = chain.nodes[edge["event"]]
            harvest = Harvest(chain.event_time(node), node["ledger_seq"])
            if edge["from"] not in found or harvest.when > found[edge["from"]].when:
                found[edge["from"]] = harvest
    return found


def _holder_fact(
    chain: history.Chain, harvest: Harvest | None, dkbm: str, cbfbm: str | None
) -> Fact:
    """The grower shown, as the harvest's entry records the parcel's holder."""
    if harvest is None or cbfbm is None:
        return UNBOUND
    data = chain.entries.get(harvest.seq)
    if data is not None and not recorded.records_effects(data):
        return facts.unrecorded(harvest.seq)
    return facts.of(harvest.seq, {pointer("data", "effects", "parcels", dkbm, "contractor"): cbfbm})


@dataclass
class Origin:
    """Where a lot came from: its harvests, parcels, their places and a map."""

    harvests: list[tuple[dt.date, Fact]] = field(default_factory=list)
    places: list[tuple[str, Fact]] = field(default_factory=list)
    parcels: list[ParcelInfo] = field(default_factory=list)
    total_area_mu: float = 0.0
    map_svg: str = ""


def origin(session: Session, chain: history.Chain) -> Origin:
    """The harvest days, parcels (each fact claimed against its chain), places and map."""
    view = Origin()
    names = _Regions(session)
    holders: dict[str, tuple[str, str]] = {}  # parcel → (cbfbm, masked name)
    operators: dict[str, str] = {}
    for edge in chain.edges:
        source = chain.nodes.get(edge["from"], {})
        if edge["type"] == "holds" and source.get("type") == "household":
            holders[edge["to"]] = (source["id"], source["name"])
        if edge["type"] == "operates" and source.get("type") == "cooperative":
            operators[edge["to"]] = source["name"]
    harvests = harvest_times(chain)
    for day, seq in sorted({(history.local(h.when).date(), h.seq) for h in harvests.values()}):
        if day not in (known for known, _ in view.harvests):
            view.harvests.append((day, facts.of(seq)))
    dkbms = sorted(n["id"] for n in chain.nodes.values() if n["type"] == "parcel")
    chains = reads.chain_entries(session, [parcel_records.chain_key(dkbm) for dkbm in dkbms])
    shapes: list[drawing.MapShape] = []
    labels = drawing.parcel_labels(dkbms)
    for dkbm in dkbms:
        parcel = parcels.get_parcel(session=session, dkbm=dkbm)
        record = parcel_records.fold(
            dkbm,
            (
                (seq, kind, reads.data_of(body))
                for seq, kind, body in chains.get(parcel_records.chain_key(dkbm), [])
            ),
        )
        harvest = harvests.get(parcel.dkbm)
        crop = None
        growing = None
        if harvest is not None:
            # The crop of the season, asked well before the harvest: a harvest in May ends the
            # winter crop on a day the registry already counts as the summer season.
            growing = history.local(harvest.when).date() - CROP_BEFORE_HARVEST
            crop = parcels.crops_on(session=session, parcel_ids=[parcel.id], on=growing).get(
                parcel.id
            )
        holder = holders.get(parcel.dkbm)
        label = labels[parcel.dkbm]
        info = ParcelInfo(
            dkbm=parcel.dkbm,
            label=label,
            township=names.name(parcel.township_code),
            village=names.name(parcel.village_code),
            group=names.name(parcel.group_code),
            area_mu=parcel.area_mu,
            land_use=landuse.LAND_USE.get(parcel.land_use, parcel.land_use),
            land_use_en=landuse.LAND_USE_EN.get(parcel.land_use, parcel.land_use),
            crop=crop,
            crop_en=landuse.CROPS_EN.get(crop, crop) if crop else None,
            holder=holder[1] if holder else None,
            operator=operators.get(parcel.dkbm),
            **parcel_facts(parcel, record, crop=crop, on=growing),
            holder_fact=_holder_fact(chain, harvest, parcel.dkbm, holder[0] if holder else None),
        )
        view.parcels.append(info)
        place = f"{info.township}{info.village}"
        if place and place not in (known for known, _ in view.places):
            view.places.append(
                (place, facts.of(record.registered_seq, {"/data/fbfbm": parcel.fbfbm}))
            )
        shape = map_shape(parcel, label, epsg=parcel.epsg)
        if shape is not None:
            shapes.append(shape)
    view.total_area_mu = sum(p.area_mu for p in view.parcels)
    view.map_svg = drawing.parcel_map(shapes, scale_label=scale_label)
    return view


def map_shape(
    parcel: Any, label: str, *, epsg: int, highlighted: bool = True
) -> drawing.MapShape | None:
    """A parcel's outline for a map, in the Gauss-Krüger zone ``epsg``; None when its stored
    bytes are no geometry (edited: its code's fact fails, the page still shows)."""
    try:
        shape = geometry.to_gk(parcels.parcel_geometry(parcel), epsg)
    except (shapely.errors.GEOSException, ValueError, TypeError):
        return None
    return drawing.MapShape(label, shape, highlighted=highlighted)


def parcel_facts(
    parcel: Any, record: parcel_records.ParcelRecord, *, crop: str | None, on: dt.date | None
) -> dict[str, Fact]:
    """The facts of a parcel's code, shape, area, land use and crop (``crop`` as shown, for
    the season holding ``on``), each claimed against the entry of its chain that records it:
    the code, shape and area against the newest entry recording its shape (the registration,
    or a resurvey under the same code, which records the code and 发包方 again)."""
    registered = record.registered_seq
    if registered is None:
        return {}
    shaped = record.shape_seq
    found = {
        "code_fact": facts.of(
            shaped,
            {
                "/data/dkbm": parcel.dkbm,
                "/data/fbfbm": parcel.fbfbm,
                "/data/geometry_sha256": hashlib.sha256(parcel.geometry_wkb).hexdigest(),
            },
        ),
        "area_fact": facts.of(shaped, {"/data/area_mu": round(parcel.area_mu, 4)}),
    }
    land_use = record.land_use
    found["land_use_fact"] = (
        facts.of(land_use.seq, {land_use.pointer: parcel.land_use})
        if land_use is not None
        else facts.of(registered, {"/data/land_use": parcel.land_use})
    )
    if crop is not None and on is not None:
        crop_entry = record.crop_on(landuse.season_period, on)
        if crop_entry is not None:
            found["crop_fact"] = facts.of(crop_entry.seq, {crop_entry.pointer: crop})
        elif record.registration_records_crops:
            # The ledger records crops, yet none for this season: the row was added behind it.
            season = landuse.season_of(on)
            found["crop_fact"] = facts.of(registered, {pointer("data", "crops", season): crop})
        else:
            found["crop_fact"] = facts.unrecorded(registered)
    return found


def scale_label(metres: float) -> str:
    """The text of a map's scale bar."""
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"
