"""A season of the sample village on the chain, for ``dv demo``.

Rapeseed sown in autumn on thirty of the village's parcels, fertilized, sprayed, irrigated and
harvested in May into one lot per household, pressed into 天府菜油, bottled into serialised
5 L bottles and packed into a case; rice planted in June, harvested and milled into 10 kg bags.
Every step is an EPCIS 2.0 event captured through the same rules as the API, so the demo's
trace pages, exports and proofs are real ones. Dates are the last completed season before
today, so no event lies in the future.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.errors import DomainError
from digital_village.gs1.keys import gtin_check_digit
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from digital_village.trace import builders, capture, products, tracing
from digital_village.trace.epcis import parse_document

CHINA = builders.CHINA
RAPESEED_PARCELS = 30
RICE_PARCELS = 10


def _gtin(item: str) -> str:
    payload = "69234560" + item  # a made-up GS1 China company prefix and item reference
    return "0" + payload + gtin_check_digit(payload)


RAPESEED, OIL, OIL_5L = _gtin("0011"), _gtin("0012"), _gtin("0013")
PADDY, RICE, RICE_10KG = _gtin("0021"), _gtin("0022"), _gtin("0023")
CASE_SSCC = "169234560000000018"

PRODUCTS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (RAPESEED, "油菜籽", "rapeseed", {}),
    (OIL, "天府菜油（散装）", "rapeseed_oil", {}),
    (OIL_5L, "天府菜油 5 L", "packaged", {"net_quantity": 5.0, "net_unit": "LTR"}),
    (PADDY, "稻谷", "paddy", {}),
    (RICE, "大米", "rice", {}),
    (RICE_10KG, "旌阳大米 10 kg", "packaged", {"net_quantity": 10.0, "net_unit": "KGM"}),
)


@dataclass
class SeasonSummary:
    """What the season put on the chain (or why it was left out)."""

    events: int = 0
    lots: dict[str, tuple[str, str]] = field(default_factory=dict)  # label → (GTIN, lot)
    certificate: str | None = None
    already_recorded: bool = False
    skipped: str | None = None


def seasons(today: dt.date) -> tuple[int, int]:
    """The years of the last rapeseed harvest and rice harvest that are fully in the past."""
    rapeseed = today.year if today >= dt.date(today.year, 6, 20) else today.year - 1
    rice = today.year if today >= dt.date(today.year, 10, 20) else today.year - 1
    return rapeseed, rice


def _at(year: int, month: int, day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=CHINA)


def members_parcels(
    session: Session, cooperative_id: int, on: dt.date
) -> list[tuple[str, int, float]]:
    """(DKBM, household, 亩) of active parcels contracted by the cooperative's members."""
    found: list[tuple[str, int, float]] = []
    members: dict[int, bool] = {}
    for parcel in parcels.list_all_active(session=session):
        holding = parcels.holder_at(session=session, dkbm=parcel.dkbm, on=on)
        household = holding.contractor_household_id
        if household is None:
            continue
        if household not in members:
            row = regions.get_household(session=session, household_id=household)
            members[household] = row.cooperative_id == cooperative_id
        if members[household]:
            found.append((parcel.dkbm, household, parcel.area_mu))
    return sorted(found)


Field = tuple[str, float]  # DKBM, 亩


def _by_household(rows: list[tuple[str, int, float]]) -> list[list[Field]]:
    groups: dict[int, list[Field]] = {}
    for dkbm, household, area in rows:
        groups.setdefault(household, []).append((dkbm, area))
    return list(groups.values())


def rapeseed_field_work(year: int, fields: list[list[Field]], base: str) -> list[dict[str, Any]]:
    """Sowing in October to spraying in March, on every field."""
    events: list[dict[str, Any]] = []
    for group in fields:
        for n, (dkbm, _) in enumerate(group):
            events += [
                builders.field_work(
                    "planting",
                    dkbm=dkbm,
                    when=_at(year - 1, 10, 8 + n % 5),
                    base_url=base,
                    extensions={"dv:crop": "油菜 中双11号"},
                ),
                builders.field_work(
                    "fertilizing",
                    dkbm=dkbm,
                    when=_at(year - 1, 11, 20),
                    base_url=base,
                    extensions={"dv:fertilizer": "复合肥 15-15-15, 40 kg/亩"},
                ),
                builders.field_work("irrigating", dkbm=dkbm, when=_at(year, 1, 15), base_url=base),
                builders.field_work(
                    "fertilizing",
                    dkbm=dkbm,
                    when=_at(year, 2, 25),
                    base_url=base,
                    extensions={"dv:fertilizer": "硼肥 (叶面)"},
                ),
                builders.spraying(
                    dkbm=dkbm,
                    when=_at(year, 3, 28),
                    base_url=base,
                    pesticide="吡虫啉 10% WP",
                    dose=0.02,
                    dose_unit="KGM",
                    interval_days=14,
                ),
            ]
    return events


def _harvests(
    events: list[dict[str, Any]],
    fields: list[list[Field]],
    gtin: str,
    prefix: str,
    kilograms_per_mu: float,
    when: dt.datetime,
    base: str,
    ilmd: dict[str, Any] | None = None,
) -> list[tuple[str, float]]:
    """A harvest lot per household's fields (``<prefix>-001``, ...), added to ``events``;
    returns each lot with its kilograms."""
    harvested: list[tuple[str, float]] = []
    for number, group in enumerate(fields, start=1):
        lot = f"{prefix}-{number:03d}"
        kilograms = round(kilograms_per_mu * sum(area for _, area in group), 1)
        harvested.append((lot, kilograms))
        events.append(
            builders.harvest(
                gtin=gtin,
                lot=lot,
                kilograms=kilograms,
                dkbms=[dkbm for dkbm, _ in group],
                when=when,
                base_url=base,
                ilmd=ilmd,
            )
        )
    return harvested


def _rapeseed(
    year: int, fields: list[list[Field]], base: str
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    events = rapeseed_field_work(year, fields, base)
    lots: dict[str, tuple[str, str]] = {}
    harvested = _harvests(
        events,
        fields,
        RAPESEED,
        f"RS{year}",
        175.0,
        _at(year, 5, 18),
        base,
        {"dv:variety": "中双11号"},
    )
    lots["rapeseed"] = (RAPESEED, harvested[0][0])
    half = len(harvested) // 2 or 1
    for index, batch in enumerate((harvested[:half], harvested[half:]), start=1):
        if not batch:
            continue
        total = sum(kg for _, kg in batch)
        oil_lot = f"CY{year}-{index:02d}"
        events.append(
            builders.transformation(
                step="pressing",
                inputs=[(RAPESEED, lot, kg, "KGM") for lot, kg in batch],
                outputs=[(OIL, oil_lot, round(total * 0.38, 1), "LTR")],
                when=_at(year, 6, 2 + index),
                base_url=base,
                read_point=f"{base}/loc/press-1",
                ilmd={"dv:pressing": "物理压榨"},
            )
        )
        lots.setdefault("oil", (OIL, oil_lot))
    bottle_lot = f"TF{year}-0601"
    serials = [f"{year}{n:04d}" for n in range(1, 21)]
    events.append(
        builders.bottling(
            source=(OIL, lots["oil"][1], 100.0, "LTR"),
            gtin=OIL_5L,
            lot=bottle_lot,
            serials=serials,
            when=_at(year, 6, 10),
            base_url=base,
        )
    )
    events.append(
        builders.packing(
            parent=f"{base}/00/{CASE_SSCC}",
            gtin=OIL_5L,
            lot=bottle_lot,
            serials=serials[:4],
            when=_at(year, 6, 11),
            base_url=base,
        )
    )
    lots["bottles"] = (OIL_5L, bottle_lot)
    return events, lots


def _rice(
    year: int, fields: list[list[Field]], base: str
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    events: list[dict[str, Any]] = []
    for group in fields:
        for dkbm, _ in group:
            events += [
                builders.field_work(
                    "planting",
                    dkbm=dkbm,
                    when=_at(year, 6, 5),
                    base_url=base,
                    extensions={"dv:crop": "水稻 宜香优2115"},
                ),
                builders.field_work("irrigating", dkbm=dkbm, when=_at(year, 7, 10), base_url=base),
                builders.field_work("fertilizing", dkbm=dkbm, when=_at(year, 7, 20), base_url=base),
            ]
    harvested = _harvests(events, fields, PADDY, f"DG{year}", 560.0, _at(year, 9, 22), base)
    total = sum(kg for _, kg in harvested)
    rice_lot = f"DM{year}-01"
    events.append(
        builders.transformation(
            step="milling",
            inputs=[(PADDY, lot, kg, "KGM") for lot, kg in harvested],
            outputs=[(RICE, rice_lot, round(total * 0.68, 1), "KGM")],
            when=_at(year, 10, 8),
            base_url=base,
            read_point=f"{base}/loc/mill-1",
        )
    )
    bag_lot = f"JY{year}-1010"
    events.append(
        builders.bottling(
            source=(RICE, rice_lot, 100.0, "KGM"),
            gtin=RICE_10KG,
            lot=bag_lot,
            serials=[f"M{year}{n:03d}" for n in range(1, 11)],
            when=_at(year, 10, 10),
            base_url=base,
        )
    )
    return events, {
        "paddy": (PADDY, harvested[0][0]),
        "rice": (RICE, rice_lot),
        "rice bags": (RICE_10KG, bag_lot),
    }


def record_sample_season(
    *, session: Session, ledger: Ledger, cooperative_id: int, base_url: str, today: dt.date
) -> SeasonSummary:
    """Put the sample season on the chain once; a second call finds it and adds nothing."""
    summary = SeasonSummary()
    rapeseed_year, rice_year = seasons(today)
    operator = Actor.operator()
    existing = products.products_by_gtin(session=session, gtins=[OIL_5L])
    if existing:
        summary.already_recorded = True
        summary.lots = {
            "rapeseed": (RAPESEED, f"RS{rapeseed_year}-001"),
            "bottles": (OIL_5L, f"TF{rapeseed_year}-0601"),
            "rice bags": (RICE_10KG, f"JY{rice_year}-1010"),
        }
        return summary
    sown = dt.date(rapeseed_year - 1, 10, 8)
    held = members_parcels(session, cooperative_id, sown)
    if len(held) < RAPESEED_PARCELS + RICE_PARCELS:
        summary.skipped = (
            f"only {len(held)} parcels were held by member households on {sown}; "
            "the season needs parcels held since before sowing"
        )
        return summary
    for code, name, category, extra in PRODUCTS:
        products.register_product(
            session=session,
            ledger=ledger,
            actor=operator,
            gtin=code,
            name=name,
            category=category,
            cooperative_id=cooperative_id,
            **extra,
        )
    rapeseed_fields = _by_household(held[:RAPESEED_PARCELS])
    rice_fields = _by_household(held[RAPESEED_PARCELS : RAPESEED_PARCELS + RICE_PARCELS])
    created = dt.datetime.combine(today, dt.time(8), tzinfo=CHINA)
    crops = (
        _rapeseed(rapeseed_year, rapeseed_fields, base_url),
        _rice(rice_year, rice_fields, base_url),
    )
    for events, lots in crops:
        document = parse_document(builders.document(events, created=created))
        result = capture.capture(
            session=session,
            ledger=ledger,
            actor=operator,
            events=document.epcis_body.event_list,
            base_url=base_url,
            context=document.context,
            capture_id=None,
        )
        summary.events += len(result.events)
        summary.lots.update(lots)
    gtin, lot = summary.lots["bottles"]
    row = products.get_lot(session=session, gtin=gtin, lot=lot)
    try:
        issued = products.issue_certificate(
            session=session,
            ledger=ledger,
            actor=operator,
            gtin=gtin,
            lot=lot,
            contact="0838-6200000",
            basis=["self_testing", "internal_quality_control"],
            origin=tracing.origin_of_lot(session=session, lot=row),
            issued_on=dt.date(rapeseed_year, 6, 12),
        )
        summary.certificate = issued.number
    except DomainError as error:  # the demo goes on without it
        summary.skipped = f"certificate: {error.detail}"
    return summary
