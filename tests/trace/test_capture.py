"""The capture rules: what is recorded, what is refused (naming why), and that a refusal
leaves the ledger and the lineage untouched."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from digital_village.trace import builders, event_hash
from digital_village.trace.models import Event, Lot, LotParcel, Unit
from tests.conftest import World
from tests.trace import farm_chain
from tests.trace.conftest import (
    BASE,
    BOTTLE,
    OIL,
    OTHER_COOP_SEED,
    RAPESEED,
    Chain,
    at,
    capture_doc,
    post_event,
    season,
)


def ledger_size(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def event_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Event)) or 0)


def lot_row(session: Session, gtin: str, lot: str) -> Lot:
    session.expire_all()
    row = session.scalar(select(Lot).where(Lot.gtin == gtin, Lot.lot == lot))
    assert row is not None
    return row


def harvest(
    chain: Chain, lot: str = "RS-1", kilograms: float = 1000.0, **kw: Any
) -> dict[str, Any]:
    return builders.harvest(
        gtin=kw.pop("gtin", RAPESEED),
        lot=lot,
        kilograms=kilograms,
        dkbms=kw.pop("dkbms", [chain.own[0]]),
        when=kw.pop("when", at(5, 20)),
        base_url=BASE,
        **kw,
    )


def pressing(inputs: list[tuple[str, float]], out_lot: str, litres: float) -> dict[str, Any]:
    return builders.transformation(
        step="pressing",
        inputs=[(RAPESEED, lot, kg, "KGM") for lot, kg in inputs],
        outputs=[(OIL, out_lot, litres, "LTR")],
        when=at(6, 3),
        base_url=BASE,
    )


def assert_refused(
    response: Any, status: int, fragment: str, session: Session, before: tuple[int, int]
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert fragment in body["detail"], body["detail"]
    assert (ledger_size(session), event_count(session)) == before
    return body


@pytest.fixture
def before(session: Session, chain: Chain) -> tuple[int, int]:
    return ledger_size(session), event_count(session)


# --- what is recorded -------------------------------------------------------------------------


def test_an_event_is_on_the_ledger_with_its_hash_id_and_proof(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    event = harvest(chain)
    response = post_event(client, world, "farmer", event)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["eventID"].startswith("ni:///sha-256;") and body["eventID"].endswith("?ver=CBV2.0")
    assert body["lots"] == [f"{BASE}/01/{RAPESEED}/10/RS-1"]
    assert body["proof"] == f"/api/v1/ledger/entries/{body['ledgerSeq']}/proof"
    proof = client.get(body["proof"])
    assert proof.status_code == 200 and proof.text.startswith("c2sp.org/tlog-proof@v1")
    entry = orjson.loads(client.get(f"/api/v1/ledger/entries/{body['ledgerSeq']}").content)
    assert entry["kind"] == "trace.epcis_event"
    assert entry["chain"]["key"] == f"lot:{RAPESEED}/RS-1"
    assert entry["data"]["event"]["eventID"] == body["eventID"]
    assert entry["data"]["event"]["quantityList"][0]["quantity"] == 1000.0
    lot = lot_row(session, RAPESEED, "RS-1")
    assert (lot.produced, lot.consumed, lot.origin) == (1000.0, 0.0, "harvest")
    parcels = session.scalars(select(LotParcel).where(LotParcel.lot_id == lot.id)).all()
    assert [(p.dkbm, p.household_id) for p in parcels] == [(chain.own[0], world.household_a)]
    assert parcels[0].area_mu == pytest.approx(5.4, rel=0.01)


def test_the_events_of_a_lot_form_its_own_chain(
    client: TestClient, world: World, chain: Chain
) -> None:
    first = post_event(client, world, "farmer", harvest(chain)).json()
    second = post_event(client, world, "manager", pressing([("RS-1", 400)], "OIL-1", 150)).json()
    third = post_event(client, world, "manager", pressing([("RS-1", 100)], "OIL-2", 38)).json()
    second_entry = orjson.loads(client.get(f"/api/v1/ledger/entries/{second['ledgerSeq']}").content)
    third_entry = orjson.loads(client.get(f"/api/v1/ledger/entries/{third['ledgerSeq']}").content)
    # The pressing makes the oil lot: the oil lot's chain starts there.
    assert second_entry["chain"] == {"key": f"lot:{OIL}/OIL-1", "prev": None}
    assert third_entry["chain"]["key"] == f"lot:{OIL}/OIL-2"
    assert first["ledgerSeq"] < second["ledgerSeq"] < third["ledgerSeq"]


def test_quantities_are_kept_per_lot(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    events = [harvest(chain), pressing([("RS-1", 600)], "OIL-1", 230)]
    events.append(pressing([("RS-1", 0.4)], "OIL-2", 0.15))
    events[-1]["inputQuantityList"][0]["uom"] = "TNE"  # 0.4 t = 400 kg
    assert capture_doc(client, world, "manager", events).status_code == 202
    rapeseed = lot_row(session, RAPESEED, "RS-1")
    assert (rapeseed.produced, rapeseed.consumed) == (1000.0, pytest.approx(1000.0))
    oil = lot_row(session, OIL, "OIL-1")
    assert (oil.produced, oil.origin) == (230.0, "transformation")


def test_a_harvest_may_come_from_several_parcels_and_the_cooperatives_land(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    event = harvest(chain, dkbms=[chain.own[0], chain.own[1], chain.coop_operated])
    assert post_event(client, world, "manager", event).status_code == 201
    lot = lot_row(session, RAPESEED, "RS-1")
    rows = session.scalars(select(LotParcel).where(LotParcel.lot_id == lot.id)).all()
    holders = {row.dkbm: (row.household_id, row.operator_cooperative_id) for row in rows}
    assert holders == {
        chain.own[0]: (world.household_a, None),
        chain.own[1]: (world.household_a, None),
        chain.coop_operated: (None, world.coop_a),
    }


def test_bottling_makes_serialised_items_and_packing_puts_them_in_a_case(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    bottles = lot_row(session, BOTTLE, "B-2025-007")
    assert (bottles.produced, bottles.origin) == (4.0, "transformation")
    units = session.scalars(select(Unit).where(Unit.lot_id == bottles.id).order_by(Unit.serial))
    assert [(u.serial, u.status) for u in units] == [(f"000{i}", "active") for i in range(1, 5)]
    assert lot_row(session, OIL, "OIL-2025-007").consumed == 20.0


def test_events_about_unknown_identifiers_are_stored_as_given(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    # A trading partner's shipping event: GTINs and SSCCs nobody registered here.
    event = farm_chain.shipping()
    response = post_event(client, world, "manager", event)
    assert response.status_code == 201, response.text
    stored = session.scalar(select(Event).where(Event.event_id == response.json()["eventID"]))
    assert stored is not None and stored.cooperative_id == world.coop_a


# --- what is refused ---------------------------------------------------------------------------


def test_an_unknown_parcel_is_refused(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = harvest(chain, dkbms=["5106031012010199999"])
    body = assert_refused(
        post_event(client, world, "admin", event), 422, "no parcel with DKBM", session, before
    )
    assert body["errors"][0]["pointer"] == "/readPoint/id"


def test_an_unknown_lot_is_refused(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    response = post_event(client, world, "manager", pressing([("RS-404", 10)], "OIL-1", 4))
    body = assert_refused(response, 422, "lot 'RS-404' of 油菜籽", session, before)
    assert body["errors"][0]["pointer"] == "/inputQuantityList/0/epcClass"


def test_a_wrong_gtin_check_digit_is_refused(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = harvest(chain)
    event["quantityList"][0]["epcClass"] = f"{BASE}/01/06901234500012/10/RS-1"
    assert_refused(
        post_event(client, world, "manager", event),
        422,
        "check digit should be 1, got 2",
        session,
        before,
    )


def test_an_event_in_the_future_is_refused(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    tomorrow = dt.datetime.now(builders.CHINA) + dt.timedelta(days=1)
    event = harvest(chain, when=tomorrow)
    body = assert_refused(
        post_event(client, world, "farmer", event), 422, "is in the future", session, before
    )
    assert body["errors"][0]["pointer"] == "/eventTime"


def test_a_transformation_may_not_consume_more_than_the_lot_holds(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    assert post_event(client, world, "farmer", harvest(chain, kilograms=800)).status_code == 201
    before = (ledger_size(session), event_count(session))
    response = post_event(client, world, "manager", pressing([("RS-1", 1000)], "OIL-1", 380))
    assert_refused(response, 409, "holds 800 KGM; this event consumes 1000 KGM", session, before)
    assert lot_row(session, RAPESEED, "RS-1").consumed == 0


def test_a_lot_is_not_consumed_twice(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    assert post_event(client, world, "farmer", harvest(chain)).status_code == 201
    first = post_event(client, world, "manager", pressing([("RS-1", 1000)], "OIL-1", 380))
    assert first.status_code == 201
    before = (ledger_size(session), event_count(session))
    again = post_event(client, world, "manager", pressing([("RS-1", 1000)], "OIL-2", 380))
    assert_refused(again, 409, "already used up by event", session, before)


def test_within_one_capture_later_events_see_what_earlier_ones_used(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    events = [harvest(chain), pressing([("RS-1", 700)], "OIL-1", 260)]
    events.append(pressing([("RS-1", 700)], "OIL-2", 260))
    body = assert_refused(
        capture_doc(client, world, "manager", events), 409, "holds 300 KGM", session, before
    )
    assert body["errors"][0]["pointer"] == "/epcisBody/eventList/2/inputQuantityList/0/epcClass"


def test_a_malformed_document_is_refused_with_pointers(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = harvest(chain)
    del event["eventTimeZoneOffset"]
    event["action"] = "CREATE"
    body = assert_refused(
        capture_doc(client, world, "manager", [event]),
        422,
        "not a valid EPCIS 2.0 document",
        session,
        before,
    )
    pointers = {error["pointer"] for error in body["errors"]}
    assert {
        "/epcisBody/eventList/0/eventTimeZoneOffset",
        "/epcisBody/eventList/0/action",
    } <= pointers


def test_a_lot_is_made_once(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    assert post_event(client, world, "farmer", harvest(chain)).status_code == 201
    before = (ledger_size(session), event_count(session))
    again = harvest(chain, kilograms=10, dkbms=[chain.own[1]])
    assert_refused(
        post_event(client, world, "farmer", again), 409, "already exists", session, before
    )


def test_the_same_event_is_not_captured_twice(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    event = builders.field_work("planting", dkbm=chain.own[0], when=at(3, 1), base_url=BASE)
    assert post_event(client, world, "farmer", event).status_code == 201
    before = (ledger_size(session), event_count(session))
    assert_refused(
        post_event(client, world, "farmer", event), 409, "was already captured", session, before
    )


OTHER_HASH = "ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0"


def test_a_declared_hash_event_id_that_differs_is_kept_as_sent_and_flagged(
    client: TestClient, world: World, chain: Chain
) -> None:
    event = builders.field_work("planting", dkbm=chain.own[0], when=at(3, 1), base_url=BASE)
    ours = event_hash.event_hash_id(event)
    response = post_event(client, world, "farmer", {**event, "eventID": OTHER_HASH})
    assert response.status_code == 201, response.text
    assert (response.json()["eventID"], response.json()["computedEventID"]) == (OTHER_HASH, ours)
    found = client.get(
        "/api/v1/epcis/events", params={"EQ_eventID": OTHER_HASH}, headers=world.auth("admin")
    ).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [(e["eventID"], e["dv:computedEventID"]) for e in found] == [(OTHER_HASH, ours)]
    # Our own events keep their hash IDs, unflagged; so does a partner's non-hash eventID.
    second = builders.field_work("planting", dkbm=chain.own[1], when=at(3, 1), base_url=BASE)
    own = post_event(client, world, "farmer", second).json()
    assert (own["eventID"], own["computedEventID"]) == (event_hash.event_hash_id(second), None)
    third = builders.field_work("planting", dkbm=chain.own[2], when=at(3, 1), base_url=BASE)
    uuid = "urn:uuid:4f8a1f0e-6b1d-4c55-9d0e-3b5f3c1b2a10"
    kept = post_event(client, world, "farmer", {**third, "eventID": uuid}).json()
    assert (kept["eventID"], kept["computedEventID"]) == (uuid, None)


def test_a_strict_server_refuses_a_declared_hash_that_differs(
    client: TestClient,
    world: World,
    chain: Chain,
    session: Session,
    before: tuple[int, int],
    settings: Settings,
) -> None:
    settings.epcis_strict_hash = True
    event = builders.field_work("planting", dkbm=chain.own[0], when=at(3, 1), base_url=BASE)
    body = assert_refused(
        post_event(client, world, "farmer", {**event, "eventID": OTHER_HASH}),
        422,
        "does not match the event's CBV 2.0 hash",
        session,
        before,
    )
    assert body["errors"][0]["pointer"] == "/eventID"
    # The event's own hash is still welcome.
    right = {**event, "eventID": event_hash.event_hash_id(event)}
    assert post_event(client, world, "farmer", right).status_code == 201


def test_harvests_need_parcels_held_by_the_cooperative_or_its_members(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = harvest(chain, dkbms=[chain.foreign])
    assert_refused(
        post_event(client, world, "admin", event),
        422,
        "held on 2025-05-20 by neither 民安油菜专业合作社 (",
        session,
        before,
    )


def test_a_harvest_before_anyone_held_the_parcel_is_refused(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = harvest(chain, when=at(5, 20, year=2024))
    assert_refused(
        post_event(client, world, "admin", event),
        422,
        "had no holder on 2024-05-20",
        session,
        before,
    )


def test_a_harvest_is_weighed(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = harvest(chain)
    event["quantityList"][0]["uom"] = "LTR"
    assert_refused(post_event(client, world, "farmer", event), 422, "in KGM", session, before)


def test_field_work_names_a_parcel(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = builders.field_work("irrigating", dkbm=chain.own[0], when=at(3, 1), base_url=BASE)
    event["readPoint"] = event["bizLocation"] = {"id": "https://elsewhere.example/field/7"}
    assert_refused(
        post_event(client, world, "admin", event),
        422,
        "field work names its parcel",
        session,
        before,
    )


def test_project_steps_are_full_uris(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = builders.field_work("planting", dkbm=chain.own[0], when=at(3, 1), base_url=BASE)
    event["bizStep"] = "dv:planting"
    assert_refused(post_event(client, world, "admin", event), 422, "full URIs", session, before)


# --- who may record what ------------------------------------------------------------------------


def test_a_farmer_records_only_on_parcels_of_the_household(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = builders.field_work("planting", dkbm=chain.foreign, when=at(3, 1), base_url=BASE)
    assert_refused(
        post_event(client, world, "farmer", event),
        403,
        "not held by your household",
        session,
        before,
    )
    operated = builders.field_work(
        "planting", dkbm=chain.coop_operated, when=at(3, 1), base_url=BASE
    )
    assert_refused(
        post_event(client, world, "farmer", operated),
        403,
        "not held by your household",
        session,
        before,
    )


def test_a_farmer_records_field_work_only(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    assert post_event(client, world, "farmer", harvest(chain)).status_code == 201
    before = (ledger_size(session), event_count(session))
    response = post_event(client, world, "farmer", pressing([("RS-1", 10)], "OIL-1", 4))
    assert_refused(response, 403, "a farmer token records field work", session, before)


def test_a_manager_records_only_for_its_cooperative(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = builders.field_work("planting", dkbm=chain.foreign, when=at(3, 1), base_url=BASE)
    assert_refused(
        post_event(client, world, "manager", event),
        403,
        "neither your cooperative",
        session,
        before,
    )
    other = copy.deepcopy(harvest(chain, gtin=OTHER_COOP_SEED))
    assert_refused(
        post_event(client, world, "manager", other), 403, "a manager token may not", session, before
    )


def test_a_device_never_records_events(
    client: TestClient, world: World, chain: Chain, session: Session, before: tuple[int, int]
) -> None:
    event = builders.field_work("planting", dkbm=chain.own[0], when=at(3, 1), base_url=BASE)
    assert_refused(post_event(client, world, "device", event), 403, "device", session, before)


def test_splits_and_merges_keep_the_lineage(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    def regroup(inputs: list[tuple[str, float]], outputs: list[tuple[str, float]]) -> Any:
        return builders.transformation(
            step="repackaging",
            inputs=[(RAPESEED, lot, kg, "KGM") for lot, kg in inputs],
            outputs=[(RAPESEED, lot, kg, "KGM") for lot, kg in outputs],
            when=at(5, 25),
            base_url=BASE,
        )

    events = [
        harvest(chain, "RS-1", 1000),
        harvest(chain, "RS-2", 500, dkbms=[chain.own[1]]),
        regroup([("RS-1", 1000)], [("RS-1A", 600), ("RS-1B", 400)]),  # a split
        regroup([("RS-1A", 600), ("RS-2", 500)], [("RS-M", 1100)]),  # a merge
    ]
    assert capture_doc(client, world, "manager", events).status_code == 202
    assert lot_row(session, RAPESEED, "RS-1").consumed == 1000
    body = client.get(f"/api/v1/trace/{RAPESEED}/RS-M").json()
    lots = {node["lot"] for node in body["nodes"] if node["type"] == "lot"}
    assert lots == {"RS-M", "RS-1A", "RS-1", "RS-2"}
    parcels = {node["id"] for node in body["nodes"] if node["type"] == "parcel"}
    assert parcels == {chain.own[0], chain.own[1]}
    recall = client.get(f"/api/v1/trace/{RAPESEED}/RS-1", params={"direction": "forward"}).json()
    assert {node["lot"] for node in recall["nodes"] if node["type"] == "lot"} == {
        "RS-1",
        "RS-1A",
        "RS-1B",
        "RS-M",
    }


def test_work_after_a_split_is_refused_naming_the_parcels_that_replaced_it(
    client: TestClient, world: World, chain: Chain, session: Session
) -> None:
    x, y = 430_000.0, 3_459_000.0  # the household's first parcel, 60 m square (EPSG:4544)
    halves = [
        to_lonlat(box(x, y, x + 30, y + 60), 4544),
        to_lonlat(box(x + 30, y, x + 60, y + 60), 4544),
    ]
    children = parcels.split(
        session=session,
        ledger=chain.ledger,
        dkbm=chain.own[0],
        parts=halves,
        actor=Actor.operator(),
        last_event=None,
    )
    before = (ledger_size(session), event_count(session))
    # Recorded as done a little after the split (event times are kept to the second).
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    response = post_event(client, world, "farmer", harvest(chain, when=later))
    names = ", ".join(child.dkbm for child in children)
    body = assert_refused(response, 422, f"parcel {chain.own[0]} was retired on ", session, before)
    assert body["detail"].endswith(f"; record work on {names}")
    # Work done before the split is still recorded on the parcel it was done on.
    early = post_event(client, world, "farmer", harvest(chain, lot="RS-0", when=at(4, 20)))
    assert early.status_code == 201, early.text
