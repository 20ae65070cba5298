"""The registry on both backends: codes, lookups, holders, history and the ledger."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import shapely
from shapely.geometry import box
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.errors import Conflict, Invalid, NotFound
from digital_village.ledger.log import Ledger
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels import service as parcels
from digital_village.parcels.models import Parcel, ParcelSequence
from tests.conftest import World
from tests.factories import GROUP
from tests.parcels.conftest import ORIGIN_E, ORIGIN_N, field, gk_box

OPERATOR = Actor.operator()


def test_codes_are_assigned_in_sequence_under_the_fbfbm(grid: list[str]) -> None:
    assert grid == [f"{GROUP}{n:05d}" for n in range(1, 5)]


def test_get_parcel_returns_area_in_mu(session: Session, grid: list[str]) -> None:
    parcel = parcels.get_parcel(session=session, dkbm=grid[0])
    assert parcel.area_m2 == pytest.approx(2500.0, abs=0.01)
    assert parcel.area_mu == pytest.approx(3.75, abs=1e-4)
    assert parcel.village_code == GROUP[:12] and parcel.group_code == GROUP
    with pytest.raises(NotFound):
        parcels.get_parcel(session=session, dkbm=GROUP + "99999")


def test_point_lookup_finds_the_field_and_nothing_outside(
    session: Session, grid: list[str]
) -> None:
    inside = field(1, 1).centroid
    found = parcels.parcel_containing_point(session=session, lon=inside.x, lat=inside.y)
    assert found is not None and found.dkbm == grid[3]
    outside = field(5, 5).centroid
    assert parcels.parcel_containing_point(session=session, lon=outside.x, lat=outside.y) is None


def test_point_lookup_in_a_projected_crs_and_gcj02(session: Session, grid: list[str]) -> None:
    lon, lat = parcels.to_lonlat_point(
        ORIGIN_E + 75, ORIGIN_N + 25, parcels.parse_source_crs("EPSG:4544")
    )
    found = parcels.parcel_containing_point(session=session, lon=lon, lat=lat)
    assert found is not None and found.dkbm == grid[1]
    from digital_village.parcels.geometry import wgs84_to_gcj02

    gcj = wgs84_to_gcj02(lon, lat)
    assert parcels.to_lonlat_point(*gcj, parcels.parse_source_crs("gcj02")) == pytest.approx(
        (lon, lat), abs=1e-9
    )
    with pytest.raises(Invalid, match="swapped"):
        parcels.to_lonlat_point(lat, lon, parcels.SourceCrs())


def test_holder_at_follows_the_history(session: Session, ledger: Ledger, world: World) -> None:
    start = dt.date(2024, 3, 1)
    report = parcels.register_many(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        items=[
            parcels.ParcelIn(
                geometry=field(0, 0), land_use="0101", contractor_household_id=world.household_a
            )
        ],
        actor=OPERATOR,
        valid_from=start,
    )
    dkbm = report.created[0].dkbm
    parcels.change(
        session=session,
        ledger=ledger,
        dkbm=dkbm,
        change=parcels.ParcelChange(
            valid_from=dt.date(2025, 1, 1),
            holding=parcels.Holding(world.household_a, world.coop_a),
        ),
        actor=OPERATOR,
        last_event=None,
    )
    assert parcels.holder_at(session=session, dkbm=dkbm, on=dt.date(2024, 2, 1)) == (
        parcels.Holding(None, None)
    )
    assert parcels.holder_at(session=session, dkbm=dkbm, on=dt.date(2024, 12, 31)) == (
        parcels.Holding(world.household_a, None)
    )
    assert parcels.holder_at(session=session, dkbm=dkbm, on=dt.date(2025, 1, 1)) == (
        parcels.Holding(world.household_a, world.coop_a)
    )
    with pytest.raises(Invalid, match="after"):
        parcels.change(
            session=session,
            ledger=ledger,
            dkbm=dkbm,
            change=parcels.ParcelChange(
                valid_from=dt.date(2024, 6, 1), holding=parcels.Holding(None, None)
            ),
            actor=OPERATOR,
            last_event=None,
        )


def test_overlap_over_one_square_metre_is_rejected_naming_the_parcel(
    session: Session, ledger: Ledger, grid: list[str]
) -> None:
    with pytest.raises(Conflict, match=grid[0]):
        parcels.register(
            session=session,
            ledger=ledger,
            fbfbm=GROUP,
            parcel_in=parcels.ParcelIn(geometry=gk_box(40, 10, 70, 30), land_use="0103"),
            actor=OPERATOR,
        )
    # Sharing an edge is not an overlap, and neither is a 0.5 m² nick.
    parcel, _ = parcels.register(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        parcel_in=parcels.ParcelIn(geometry=gk_box(99.5, 0, 130, 1), land_use="0103"),
        actor=OPERATOR,
    )
    assert parcel.dkbm.endswith("00005")


def test_unknown_group_and_bad_land_use_are_named(
    session: Session, ledger: Ledger, world: World
) -> None:
    with pytest.raises(Invalid, match="unknown group code 09"):
        parcels.register(
            session=session,
            ledger=ledger,
            fbfbm=GROUP[:12] + "09",
            parcel_in=parcels.ParcelIn(geometry=field(0, 0), land_use="0101"),
            actor=OPERATOR,
        )
    with pytest.raises(Invalid, match="GB/T 21010"):
        parcels.register(
            session=session,
            ledger=ledger,
            fbfbm=GROUP,
            parcel_in=parcels.ParcelIn(geometry=field(0, 0), land_use="9999"),
            actor=OPERATOR,
        )
    assert session.scalar(select(Parcel.id)) is None


def test_registration_is_in_the_ledger_with_the_geometry_hash(
    session: Session, grid: list[str]
) -> None:
    parcel = parcels.get_parcel(session=session, dkbm=grid[0])
    entry = session.get(LedgerEntry, parcel.last_seq)
    assert entry is not None and entry.kind == "parcel.registered"
    assert entry.chain_key == f"parcel:{grid[0]}"
    assert parcel.geometry_sha256.encode() in entry.body
    assert parcels.verify_geometry(session=session, dkbm=grid[0]) is None
    # Someone edits the stored shape behind the registry's back: the check names it.
    moved = shapely.affinity.translate(parcels.parcel_geometry(parcel), 0.0001)
    session.execute(
        update(Parcel).where(Parcel.id == parcel.id).values(geometry_wkb=shapely.to_wkb(moved))
    )
    session.expire_all()
    problem = parcels.verify_geometry(session=session, dkbm=grid[0])
    assert problem is not None and "geometry edited" in problem


def test_split_retires_the_code_and_makes_new_ones_with_lineage(
    session: Session, ledger: Ledger, grid: list[str], world: World
) -> None:
    halves = [gk_box(0, 0, 20, 50), gk_box(20, 0, 50, 50)]
    children = parcels.split(
        session=session, ledger=ledger, dkbm=grid[0], parts=halves, actor=OPERATOR, last_event=None
    )
    assert [c.dkbm for c in children] == [f"{GROUP}00005", f"{GROUP}00006"]
    assert sum(c.area_m2 for c in children) == pytest.approx(2500.0, abs=0.05)
    with pytest.raises(Invalid, match="retired"):
        parcels.get_active_parcel(session=session, dkbm=grid[0])
    assert parcels.holder_at(session=session, dkbm=children[0].dkbm, on=parcels.today()) == (
        parcels.Holding(world.household_a, world.coop_a)
    )
    inside = gk_box(5, 5, 6, 6).centroid
    found = parcels.parcel_containing_point(session=session, lon=inside.x, lat=inside.y)
    assert found is not None and found.dkbm == children[0].dkbm
    # The retired code is never handed out again.
    sequence = session.get(ParcelSequence, GROUP)
    assert sequence is not None and sequence.last_sequence == 6


def test_split_must_cover_the_parcel(session: Session, ledger: Ledger, grid: list[str]) -> None:
    with pytest.raises(Invalid, match="cover"):
        parcels.split(
            session=session,
            ledger=ledger,
            dkbm=grid[0],
            parts=[gk_box(0, 0, 20, 50), gk_box(20, 0, 45, 50)],
            actor=OPERATOR,
            last_event=None,
        )
    assert parcels.get_active_parcel(session=session, dkbm=grid[0])


def test_merge_of_adjacent_parcels(session: Session, ledger: Ledger, grid: list[str]) -> None:
    merged = parcels.merge(
        session=session, ledger=ledger, dkbms=grid[:2], actor=OPERATOR, last_event=None
    )
    assert merged.dkbm == f"{GROUP}00005"
    assert merged.area_m2 == pytest.approx(5000.0, abs=0.05)
    assert [p.dkbm for p in parcels.lineage(session=session, dkbm=merged.dkbm)["from"]] == grid[:2]
    with pytest.raises(Invalid, match="retired"):
        parcels.merge(
            session=session, ledger=ledger, dkbms=grid[:2], actor=OPERATOR, last_event=None
        )


def test_merge_refuses_parcels_that_do_not_touch(
    session: Session, ledger: Ledger, grid: list[str]
) -> None:
    far, _ = parcels.register(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        parcel_in=parcels.ParcelIn(geometry=field(4, 0), land_use="0101"),
        actor=OPERATOR,
    )
    with pytest.raises(Invalid, match="touch"):
        parcels.merge(
            session=session,
            ledger=ledger,
            dkbms=[grid[0], far.dkbm],
            actor=OPERATOR,
            last_event=None,
        )


def test_queries_by_village_bbox_and_neighbours(session: Session, grid: list[str]) -> None:
    page = parcels.list_parcels(session=session, region=GROUP[:12], limit=3)
    assert page.total == 4 and [p.dkbm for p in page.items] == grid[:3]
    box_ = gk_box(60, 60, 70, 70).bounds
    assert [p.dkbm for p in parcels.list_parcels(session=session, bbox=box_).items] == [grid[3]]
    near = parcels.neighbours(session=session, dkbm=grid[0])
    assert [p.dkbm for p, _ in near] == grid[1:]


def test_crop_per_season_is_kept_with_history(
    session: Session, ledger: Ledger, grid: list[str]
) -> None:
    assert parcels.crop_on(session=session, dkbm=grid[0], on=dt.date(2026, 7, 1)) == "水稻"
    assert parcels.crop_on(session=session, dkbm=grid[0], on=dt.date(2027, 1, 1)) == "油菜"
    parcels.change(
        session=session,
        ledger=ledger,
        dkbm=grid[0],
        change=parcels.ParcelChange(crop=("2026-winter", "小麦")),
        actor=OPERATOR,
        last_event=None,
    )
    assert parcels.crop_on(session=session, dkbm=grid[0], on=dt.date(2027, 1, 1)) == "小麦"
    history = parcels.history(session=session, dkbm=grid[0])
    crops = [(a["season"], a["value"], a["superseded"]) for a in history["crops"]]
    assert ("2026-winter", "油菜", True) in crops and ("2026-winter", "小麦", False) in crops


def test_a_malformed_code_says_what_is_wrong_not_just_not_found(session: Session) -> None:
    with pytest.raises(Invalid, match=r"not a parcel code: DKBM must be 19 digits.*FBFBM length"):
        parcels.get_parcel(session=session, dkbm=GROUP)
    with pytest.raises(Invalid, match="only digits"):
        parcels.get_parcel(session=session, dkbm=GROUP + "0000x")
    with pytest.raises(NotFound, match=f"no parcel with DKBM {GROUP}00001"):
        parcels.get_parcel(session=session, dkbm=f" {GROUP}00001 ")


BDCDYH = "510603001002JD00001W00000000"


def test_bdcdyh_must_be_of_the_parcels_county_and_keeps_its_history(
    session: Session, ledger: Ledger, world: World
) -> None:
    def register(bdcdyh: str) -> Parcel:
        parcel, _ = parcels.register(
            session=session,
            ledger=ledger,
            fbfbm=GROUP,
            parcel_in=parcels.ParcelIn(geometry=field(0, 0), land_use="0101", bdcdyh=bdcdyh),
            actor=OPERATOR,
            valid_from=dt.date(2025, 3, 1),
        )
        return parcel

    with pytest.raises(Invalid, match="belongs to county 510604, expected 510603"):
        register("510604" + BDCDYH[6:])
    parcel = register("510603 001002 JD00001 W00000000")
    assert parcel.bdcdyh == BDCDYH
    renumbered = BDCDYH[:14] + "00002" + BDCDYH[19:]
    parcels.change(
        session=session,
        ledger=ledger,
        dkbm=parcel.dkbm,
        change=parcels.ParcelChange(valid_from=dt.date(2026, 1, 1), bdcdyh=renumbered),
        actor=OPERATOR,
        last_event=None,
    )
    assert parcel.bdcdyh == renumbered
    periods = parcels.history(session=session, dkbm=parcel.dkbm)["bdcdyh"]
    assert [(p["value"], p["valid_from"], p["valid_to"]) for p in periods] == [
        (BDCDYH, "2025-03-01", "2026-01-01"),
        (renumbered, "2026-01-01", None),
    ]
    with pytest.raises(Invalid, match="belongs to county"):
        parcels.change(
            session=session,
            ledger=ledger,
            dkbm=parcel.dkbm,
            change=parcels.ParcelChange(bdcdyh="510604" + BDCDYH[6:]),
            actor=OPERATOR,
            last_event=None,
        )


def test_a_field_far_from_its_village_is_refused_as_a_crs_mistake(
    session: Session, ledger: Ledger, grid: list[str]
) -> None:
    # The grid's fields in EPSG:4544 metres, read as if a .prj named the zone to the west.
    west = parcels.register_many(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        items=[
            parcels.ParcelIn(
                geometry=box(ORIGIN_E + 500, ORIGIN_N, ORIGIN_E + 550, ORIGIN_N + 50),
                land_use="0101",
            )
        ],
        actor=OPERATOR,
        source=parcels.parse_source_crs("EPSG:4543"),
    )
    assert west.created == []
    (reason,) = [r.reason for r in west.rejected]
    assert reason.startswith("lies 28") and "km from the other parcels of village" in reason
    assert "really in EPSG:4543?" in reason
    # A field a few kilometres off is still the village's.
    near, _ = parcels.register(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        parcel_in=parcels.ParcelIn(geometry=gk_box(5000, 5000, 5050, 5050), land_use="0101"),
        actor=OPERATOR,
    )
    assert near.dkbm == f"{GROUP}00005"


def test_every_change_split_and_merge_is_in_the_ledger(
    session: Session, ledger: Ledger, grid: list[str]
) -> None:
    def chain(dkbm: str) -> list[tuple[str, dict[str, object]]]:
        entries = session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.chain_key == f"parcel:{dkbm}")
            .order_by(LedgerEntry.seq)
        ).all()
        return [(e.kind, json.loads(e.body)["data"]) for e in entries]

    parcels.change(
        session=session,
        ledger=ledger,
        dkbm=grid[0],
        change=parcels.ParcelChange(crop=("2026-winter", "小麦")),
        actor=OPERATOR,
        last_event=None,
    )
    children = parcels.split(
        session=session,
        ledger=ledger,
        dkbm=grid[0],
        parts=[gk_box(0, 0, 20, 50), gk_box(20, 0, 50, 50)],
        actor=OPERATOR,
        last_event=None,
    )
    merged = parcels.merge(
        session=session, ledger=ledger, dkbms=grid[1::2], actor=OPERATOR, last_event=None
    )
    split_codes = [c.dkbm for c in children]
    kinds = [kind for kind, _ in chain(grid[0])]
    assert kinds == ["parcel.registered", "parcel.changed", "parcel.split"]
    assert chain(grid[0])[1][1]["crop"] == {"season": "2026-winter", "crop": "小麦"}
    assert chain(grid[0])[2][1]["into"] == split_codes
    for code in split_codes:
        ((kind, data),) = chain(code)
        assert (kind, data["from"], data["by"]) == ("parcel.registered", [grid[0]], "split")
    for parent in grid[1::2]:
        assert chain(parent)[-1] == (
            "parcel.merged",
            {"dkbm": parent, "into": [merged.dkbm], "valid_to": parcels.today().isoformat()},
        )
    ((kind, data),) = chain(merged.dkbm)
    assert (kind, data["from"], data["by"]) == ("parcel.registered", grid[1::2], "merge")
    assert merged.last_seq == session.scalar(
        select(LedgerEntry.seq).where(LedgerEntry.chain_key == f"parcel:{merged.dkbm}")
    )
