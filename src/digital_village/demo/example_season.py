"""An example season for a cooperative's manager to read, edit and capture (``dv trace
example-season``): an EPCIS 2.0 document of rapeseed sown on three of its members' fields,
sprayed, harvested, pressed into oil, bottled into serialised 5 L bottles and packed into a
case.

It is written for the database it will be captured into: the demo's products (``dv demo``
registers them), fields its member households hold and that have no harvest yet in the
season, and lot numbers, serials and a case not used before — so it captures as it is. The
dates are those of the last rapeseed season that is over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from digital_village.demo import village_season
from digital_village.errors import Invalid
from digital_village.gs1.keys import check_digit
from digital_village.regions import service as regions
from digital_village.regions.models import Cooperative
from digital_village.trace import builders, lineage, products

FIELDS: Final = 3
BOTTLES: Final = 12
KILOGRAMS_PER_MU: Final = 175.0
OIL_PER_KILOGRAM: Final = 0.38
LITRES_PER_BOTTLE: Final = 5.0


@dataclass(frozen=True)
class Example:
    """The document and what it makes, for the command to tell the manager."""

    document: dict[str, Any]
    cooperative: Cooperative
    fields: list[str]
    lots: dict[str, tuple[str, str]]  # what → (GTIN, lot)
    case: str


def _free_suffix(session: Session, year: int) -> str:
    """The first ``E<n>`` no lot of the season's products uses yet."""
    for number in range(1, 1000):
        suffix = f"E{number:02d}"
        keys = [
            (village_season.RAPESEED, f"RS{year}-{suffix}"),
            (village_season.OIL, f"CY{year}-{suffix}"),
            (village_season.OIL_5L, f"TF{year}-{suffix}"),
        ]
        if not products.lots_by_key(session=session, keys=keys):
            return suffix
    raise Invalid("every example lot number of this season is used; edit the last example")


def _unharvested_fields(
    session: Session, cooperative: Cooperative, sown: dt.date, harvest: dt.datetime
) -> list[tuple[str, float]]:
    held = village_season.members_parcels(session, cooperative.id, sown)
    since = dt.datetime.combine(sown, dt.time(), tzinfo=village_season.CHINA)
    cut = {
        row.dkbm
        for row in lineage.harvests_on_parcels(
            session=session, dkbms=[dkbm for dkbm, _, _ in held], after=since, until=harvest
        )
    }
    return [(dkbm, area) for dkbm, _, area in held if dkbm not in cut]


def build(
    *, session: Session, cooperative: Cooperative | None, base_url: str, today: dt.date
) -> Example:
    """An example season for ``cooperative`` (default: the owner of the demo's products)
    that captures as it is into this database."""
    wanted = (village_season.RAPESEED, village_season.OIL, village_season.OIL_5L)
    found = products.products_by_gtin(session=session, gtins=wanted)
    missing = [gtin for gtin in wanted if gtin not in found]
    if missing:
        raise Invalid(
            f"the example season uses the demo's products; GTIN {', '.join(missing)} is not "
            "registered (run `dv demo`, or register them with `dv trace products add`)"
        )
    if cooperative is None:
        owner = found[village_season.RAPESEED].cooperative_id
        cooperative = regions.get_cooperative(session=session, cooperative_id=owner)
    others = [gtin for gtin in wanted if found[gtin].cooperative_id != cooperative.id]
    if others:
        raise Invalid(
            f"GTIN {', '.join(others)} belongs to another cooperative than "
            f"{cooperative.name} ({cooperative.uscc})"
        )
    year, _ = village_season.seasons(today)
    sown = dt.date(year - 1, 10, 10)
    harvested = dt.datetime(year, 5, 25, 9, tzinfo=village_season.CHINA)
    fields = _unharvested_fields(session, cooperative, sown, harvested)[:FIELDS]
    if not fields:
        raise Invalid(
            f"no field held by a member of {cooperative.name} ({cooperative.uscc}) since "
            f"{sown} is left unharvested in the {year} season"
        )
    suffix = _free_suffix(session, year)
    return _season(year, suffix, fields, base_url, today, cooperative)


def _season(
    year: int,
    suffix: str,
    fields: list[tuple[str, float]],
    base: str,
    today: dt.date,
    cooperative: Cooperative,
) -> Example:
    def at(month: int, day: int, *, previous: bool = False) -> dt.datetime:
        return dt.datetime(year - 1 if previous else year, month, day, 9, tzinfo=builders.CHINA)

    seed_lot, oil_lot, bottle_lot = f"RS{year}-{suffix}", f"CY{year}-{suffix}", f"TF{year}-{suffix}"
    # The demo's field work, from sowing in October to spraying in March.
    events = village_season.rapeseed_field_work(year, [fields], base)
    kilograms = round(KILOGRAMS_PER_MU * sum(area for _, area in fields), 1)
    litres = round(kilograms * OIL_PER_KILOGRAM, 1)
    serials = [f"{year}{suffix}{n:03d}" for n in range(1, BOTTLES + 1)]
    # An SSCC: extension digit, the demo's company prefix, a serial reference of year and
    # example number, and its check digit.
    payload = f"1{village_season.CASE_SSCC[1:9]}{year % 100:02d}{int(suffix[1:]):06d}"
    case = payload + check_digit(payload)
    events += [
        builders.harvest(
            gtin=village_season.RAPESEED,
            lot=seed_lot,
            kilograms=kilograms,
            dkbms=[dkbm for dkbm, _ in fields],
            when=at(5, 25),
            base_url=base,
            ilmd={"dv:variety": "中双11号"},
        ),
        builders.transformation(
            step="pressing",
            inputs=[(village_season.RAPESEED, seed_lot, kilograms, "KGM")],
            outputs=[(village_season.OIL, oil_lot, litres, "LTR")],
            when=at(6, 6),
            base_url=base,
            read_point=f"{base}/loc/press-1",
            ilmd={"dv:pressing": "物理压榨"},
        ),
        builders.bottling(
            source=(village_season.OIL, oil_lot, BOTTLES * LITRES_PER_BOTTLE, "LTR"),
            gtin=village_season.OIL_5L,
            lot=bottle_lot,
            serials=serials,
            when=at(6, 12),
            base_url=base,
        ),
        builders.packing(
            parent=f"{base}/00/{case}",
            gtin=village_season.OIL_5L,
            lot=bottle_lot,
            serials=serials[:4],
            when=at(6, 13),
            base_url=base,
        ),
    ]
    created = dt.datetime.combine(today, dt.time(8), tzinfo=builders.CHINA)
    return Example(
        document=builders.document(events, created=created),
        cooperative=cooperative,
        fields=[dkbm for dkbm, _ in fields],
        lots={
            "rapeseed": (village_season.RAPESEED, seed_lot),
            "oil": (village_season.OIL, oil_lot),
            "bottles": (village_season.OIL_5L, bottle_lot),
        },
        case=case,
    )
