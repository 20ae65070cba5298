"""Trace graphs: backward to fields and households, forward to every lot, item and case (the
recall), corrections by errorDeclaration, and plausibility flags."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from digital_village import audit
from digital_village.config import Settings
from digital_village.trace import builders
from digital_village.trace.identifiers import canonical_epc
from tests.conftest import World
from tests.trace.conftest import (
    BASE,
    BOTTLE,
    CASE,
    OIL,
    RAPESEED,
    Chain,
    at,
    capture_doc,
    post_event,
    season,
)

RS = f"01/{RAPESEED}/10/RS-2025-001"
OIL_LOT = f"01/{OIL}/10/OIL-2025-007"
BOTTLES = f"01/{BOTTLE}/10/B-2025-007"


def graph(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any], kind: str) -> set[str]:
    return {node["id"] for node in body["nodes"] if node["type"] == kind}


def edges(body: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    return {(edge["from"], edge["to"]) for edge in body["edges"] if edge["type"] == kind}


def steps(body: dict[str, Any]) -> list[str]:
    events = [node for node in body["nodes"] if node["type"] == "event"]
    return sorted(str(node["biz_step"]).rsplit("/", 1)[-1] for node in events)


def test_backward_from_a_bottle_lot_reaches_fields_households_and_events(
    client: TestClient, world: World, chain: Chain
) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    body = graph(client, f"/api/v1/trace/{BOTTLE}/B-2025-007", direction="backward")
    assert body["root"] == BOTTLES and body["direction"] == "backward"
    assert ids(body, "lot") == {BOTTLES, OIL_LOT, RS}
    assert ids(body, "parcel") == {chain.own[0], chain.own[1]}
    assert edges(body, "transformed_into") == {(RS, OIL_LOT), (OIL_LOT, BOTTLES)}
    assert edges(body, "harvested_into") == {(chain.own[0], RS), (chain.own[1], RS)}
    field = ["planting", "planting", "fertilizing", "spraying", "harvesting"]
    assert steps(body) == sorted([*field, "pressing", "commissioning", "packing"])
    (household,) = [node for node in body["nodes"] if node["type"] == "household"]
    # Public output: the household by its 承包方编码, the name masked, no phone.
    assert household["name"] == "王**"
    assert "13808380001" not in str(body) and "王建国" not in str(body)
    assert edges(body, "holds") == {
        (household["id"], chain.own[0]),
        (household["id"], chain.own[1]),
    }
    event = next(node for node in body["nodes"] if node.get("biz_step", "").endswith("pressing"))
    assert event["proof"] == f"/api/v1/ledger/entries/{event['ledger_seq']}/proof"
    assert body["flags"] == []


def test_backward_does_not_list_field_work_of_another_season(
    client: TestClient, world: World, chain: Chain
) -> None:
    events = season(chain)
    old_harvest = builders.harvest(
        gtin=RAPESEED,
        lot="RS-2024",
        kilograms=900,
        dkbms=[chain.own[0]],
        when=at(11, 1, year=2024),
        base_url=BASE,
    )
    assert capture_doc(client, world, "manager", [old_harvest, *events]).status_code == 202
    body = graph(client, f"/api/v1/trace/{RAPESEED}/RS-2025-001")
    # Sowing on the first parcel (5 Oct) came before its November harvest: another season.
    plantings = [n for n in body["nodes"] if str(n.get("biz_step", "")).endswith("planting")]
    assert len(plantings) == 1
    assert ids(body, "lot") == {RS}


def test_forward_from_a_parcel_finds_every_lot_bottle_and_case(
    client: TestClient, world: World, chain: Chain
) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    body = graph(client, f"/api/v1/trace/parcels/{chain.own[1]}")
    assert body["direction"] == "forward" and body["root"] == chain.own[1]
    assert ids(body, "lot") == {RS, OIL_LOT, BOTTLES}
    assert ids(body, "unit") == {f"01/{BOTTLE}/21/000{i}" for i in range(1, 5)}
    assert ids(body, "container") == {canonical_epc(CASE)}
    assert (chain.own[1], RS) in edges(body, "harvested_into")
    # A parcel nothing was harvested from recalls nothing.
    empty = graph(client, f"/api/v1/trace/parcels/{chain.own[2]}")
    assert [n["type"] for n in empty["nodes"]] == ["parcel"] and empty["edges"] == []


def test_forward_from_a_lot_is_the_recall(client: TestClient, world: World, chain: Chain) -> None:
    events = season(chain)
    second = builders.transformation(
        step="pressing",
        inputs=[(RAPESEED, "RS-2025-001", 500.0, "KGM")],
        outputs=[(OIL, "OIL-2025-008", 190.0, "LTR")],
        when=at(6, 10),
        base_url=BASE,
    )
    assert capture_doc(client, world, "manager", [*events, second]).status_code == 202
    body = graph(client, f"/api/v1/trace/{RAPESEED}/RS-2025-001", direction="forward")
    assert ids(body, "lot") == {RS, OIL_LOT, BOTTLES, f"01/{OIL}/10/OIL-2025-008"}
    assert len(ids(body, "unit")) == 4
    # Backward from the second oil lot does not drag in the first one's bottles.
    back = graph(client, f"/api/v1/trace/{OIL}/OIL-2025-008")
    assert ids(back, "lot") == {RS, f"01/{OIL}/10/OIL-2025-008"}


def test_a_bottle_traces_back_through_its_lot_and_forward_to_its_case(
    client: TestClient, world: World, chain: Chain
) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    back = graph(client, f"/api/v1/trace/{BOTTLE}/B-2025-007/0001")
    assert back["root"] == f"01/{BOTTLE}/21/0001"
    assert {RS, OIL_LOT, BOTTLES} <= ids(back, "lot")
    assert (BOTTLES, f"01/{BOTTLE}/21/0001") in edges(back, "contains")
    forward = graph(client, f"/api/v1/trace/{BOTTLE}/B-2025-007/0001", direction="forward")
    assert ids(forward, "container") == {canonical_epc(CASE)}
    unpacked = graph(client, f"/api/v1/trace/{BOTTLE}/B-2025-007/0003", direction="forward")
    assert ids(unpacked, "container") == set()
    wrong_lot = client.get(f"/api/v1/trace/{BOTTLE}/B-1/0001")
    assert wrong_lot.status_code == 422 and "belongs to lot 'B-2025-007'" in wrong_lot.text
    assert client.get(f"/api/v1/trace/{BOTTLE}/B-2025-007/9999").status_code == 404


def test_unknown_lots_and_bad_gtins_are_named(client: TestClient, chain: Chain) -> None:
    missing = client.get(f"/api/v1/trace/{RAPESEED}/NOPE")
    assert missing.status_code == 404 and "no lot 'NOPE'" in missing.json()["detail"]
    bad = client.get("/api/v1/trace/06901234500012/RS-1")
    assert bad.status_code == 422 and "check digit" in bad.json()["detail"]
    direction = client.get(f"/api/v1/trace/{RAPESEED}/RS-1", params={"direction": "sideways"})
    assert direction.status_code == 422
    unknown = chain.own[0][:-5] + "99999"
    parcel = client.get(f"/api/v1/trace/parcels/{unknown}")
    assert parcel.status_code == 404 and f"no parcel with DKBM {unknown}" in parcel.text
    malformed = client.get("/api/v1/trace/parcels/51060310120")
    assert malformed.status_code == 422 and "not a parcel code" in malformed.text


# --- corrections ----------------------------------------------------------------------------


def declaration(event: dict[str, Any], corrective: list[str] | None = None) -> dict[str, Any]:
    declared = copy.deepcopy(event)
    declared["errorDeclaration"] = {
        "declarationTime": "2025-06-20T10:00:00+08:00",
        "reason": "incorrect_data",
        **({"correctiveEventIDs": corrective} if corrective else {}),
    }
    return declared


def test_a_wrong_harvest_is_corrected_and_trace_shows_the_corrected_history(
    client: TestClient, world: World, chain: Chain
) -> None:
    events = season(chain)
    captured = capture_doc(client, world, "manager", events).json()
    wrong_id = captured["events"][4]["eventID"]
    corrected = copy.deepcopy(events[4])
    corrected["quantityList"][0]["quantity"] = 1805.0
    fixed = capture_doc(client, world, "manager", [declaration(events[4]), corrected])
    assert fixed.status_code == 202, fixed.text
    declaration_result, corrected_result = fixed.json()["events"]
    # The declaration carries the eventID of the event it declares erroneous.
    assert declaration_result["eventID"] == wrong_id
    assert_harvest_corrected(client, wrong_id, corrected_result["eventID"])


def assert_harvest_corrected(client: TestClient, wrong_id: str, corrected_id: str) -> None:
    """The season's harvest was declared erroneous and recorded again with 1,805 kg: the lot
    counts the corrected harvest, and the bottle's trace shows both and runs through the
    corrected one only."""
    lot = client.get(f"/api/v1/lots/{RAPESEED}/RS-2025-001").json()
    assert (lot["quantity"], lot["remaining"]) == (1805.0, 805.0)
    body = graph(client, f"/api/v1/trace/{BOTTLE}/B-2025-007")
    nodes = {node["id"]: node for node in body["nodes"]}
    assert nodes[wrong_id]["declared_erroneous"] is True
    assert nodes[f"{wrong_id}#errorDeclaration"]["error_declaration"] is True
    assert nodes[corrected_id]["declared_erroneous"] is False
    assert (f"{wrong_id}#errorDeclaration", wrong_id) in edges(body, "declares_erroneous")
    harvests = {edge["event"] for edge in body["edges"] if edge["type"] == "harvested_into"}
    assert harvests == {corrected_id}


def test_a_correction_may_not_leave_a_lot_used_beyond_what_it_made(
    client: TestClient, world: World, chain: Chain
) -> None:
    events = season(chain)
    assert capture_doc(client, world, "manager", events).status_code == 202
    response = capture_doc(client, world, "manager", [declaration(events[4])])
    assert response.status_code == 409
    assert "1000 KGM used but only 0 made" in response.json()["detail"]


def test_a_declared_transformation_gives_its_input_back(
    client: TestClient, world: World, chain: Chain
) -> None:
    events = season(chain)[:6]
    assert capture_doc(client, world, "manager", events).status_code == 202
    assert capture_doc(client, world, "manager", [declaration(events[5])]).status_code == 202
    lot = client.get(f"/api/v1/lots/{RAPESEED}/RS-2025-001").json()
    assert lot["remaining"] == 1800.0
    assert client.get(f"/api/v1/trace/{OIL}/OIL-2025-007").json()["nodes"][0]["quantity"] == 0
    again = capture_doc(client, world, "manager", [declaration(events[5])])
    assert again.status_code == 409 and "already declared erroneous" in again.text


def test_a_declaration_may_come_before_its_event(
    client: TestClient, world: World, chain: Chain, session: Session, settings: Settings
) -> None:
    events = season(chain)
    wrong = events[4]  # the harvest
    ahead = capture_doc(client, world, "manager", [declaration(wrong)])
    assert ahead.status_code == 202, ahead.text
    wrong_id = ahead.json()["events"][0]["eventID"]
    # Stored, and answered by the query interface, before the event it declares is here.
    found = client.get(
        "/api/v1/epcis/events", params={"EQ_eventID": wrong_id}, headers=world.auth("admin")
    ).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["errorDeclaration"]["reason"] for e in found] == ["incorrect_data"]
    again = capture_doc(client, world, "manager", [declaration(wrong)])
    assert again.status_code == 409 and "has not been received yet" in again.text
    # The audit binds the waiting declaration's row to its entry, before and after.
    assert audit.audit(session, origin=settings.ledger_origin).problems == []
    # The event arrives (with its correction): it is stored as already declared erroneous,
    # with the effect on lineage and trace a declaration after it has.
    corrected = copy.deepcopy(wrong)
    corrected["quantityList"][0]["quantity"] = 1805.0
    arrived = capture_doc(client, world, "manager", [*events[:5], corrected, *events[5:]])
    assert arrived.status_code == 202, arrived.text
    assert arrived.json()["events"][4]["eventID"] == wrong_id
    assert_harvest_corrected(client, wrong_id, arrived.json()["events"][5]["eventID"])
    assert audit.audit(session, origin=settings.ledger_origin).problems == []
    # Declared once: declaring it again is refused as for any declared event.
    twice = capture_doc(client, world, "manager", [declaration(wrong)])
    assert twice.status_code == 409 and "already declared erroneous" in twice.text


def test_an_event_declared_ahead_takes_nothing_it_would_have_made(
    client: TestClient, world: World, chain: Chain
) -> None:
    events = season(chain)
    assert capture_doc(client, world, "manager", [declaration(events[4])]).status_code == 202
    # Without a correction, the pressing that needs the declared harvest's seed is refused,
    # naming it; nothing of that capture is stored.
    response = capture_doc(client, world, "manager", events[:6])
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["pointer"] == "/epcisBody/eventList/5/inputQuantityList/0/epcClass"
    assert "was declared erroneous and has not been recorded again" in error["message"]
    assert client.get(f"/api/v1/lots/{RAPESEED}/RS-2025-001").status_code == 404


def test_a_farmer_declares_only_the_households_events(
    client: TestClient, world: World, chain: Chain
) -> None:
    events = season(chain)
    assert capture_doc(client, world, "manager", events).status_code == 202
    assert post_event(client, world, "farmer", declaration(events[2])).status_code == 201
    assert post_event(client, world, "farmer", declaration(events[5])).status_code == 403


# --- plausibility -------------------------------------------------------------------------------


def test_implausible_yield_mass_balance_and_pre_harvest_interval_are_flagged(
    client: TestClient, world: World, chain: Chain
) -> None:
    p1 = chain.own[0]
    events = [
        builders.spraying(
            dkbm=p1,
            when=at(5, 15),
            base_url=BASE,
            pesticide="吡虫啉",
            dose=1.0,
            dose_unit="KGM",
            interval_days=14,
        ),
        builders.harvest(
            gtin=RAPESEED, lot="RS-X", kilograms=5000, dkbms=[p1], when=at(5, 20), base_url=BASE
        ),
        builders.transformation(
            step="pressing",
            inputs=[(RAPESEED, "RS-X", 1000.0, "KGM")],
            outputs=[(OIL, "OIL-X", 600.0, "LTR")],
            when=at(6, 3),
            base_url=BASE,
        ),
    ]
    captured = capture_doc(client, world, "manager", events).json()
    body = graph(client, f"/api/v1/trace/{OIL}/OIL-X")
    flags = {flag["kind"]: flag for flag in body["flags"]}
    assert set(flags) == {"yield", "mass_balance", "pre_harvest_interval"}
    assert flags["yield"]["subject"] == f"01/{RAPESEED}/10/RS-X"
    assert flags["yield"]["value"] > 900 and flags["yield"]["expected"] == [80.0, 300.0]
    assert flags["mass_balance"]["subject"] == captured["events"][2]["eventID"]
    assert flags["mass_balance"]["value"] == 0.6
    assert "安全间隔期" in flags["pre_harvest_interval"]["message"]
    assert flags["pre_harvest_interval"]["value"] == 5.0
    # A manager who knows better widens the range; the flag goes.
    patched = client.patch(
        f"/api/v1/products/{OIL}",
        json={"ratio": {"min": 0.3, "max": 0.65}},
        headers=world.auth("manager"),
    )
    assert patched.status_code == 200
    kinds = {flag["kind"] for flag in graph(client, f"/api/v1/trace/{OIL}/OIL-X")["flags"]}
    assert kinds == {"yield", "pre_harvest_interval"}


def test_a_second_harvest_of_a_parcel_within_the_crops_season_is_flagged(
    client: TestClient, world: World, chain: Chain
) -> None:
    p1 = chain.own[0]

    def cut(lot: str, when: Any) -> dict[str, Any]:
        return builders.harvest(
            gtin=RAPESEED, lot=lot, kilograms=300, dkbms=[p1], when=when, base_url=BASE
        )

    events = [cut("RS-A", at(5, 20)), cut("RS-B", at(6, 1)), cut("RS-C", at(5, 22, year=2026))]
    assert capture_doc(client, world, "manager", events).status_code == 202

    def repeats(lot: str) -> list[dict[str, Any]]:
        flags = graph(client, f"/api/v1/trace/{RAPESEED}/{lot}")["flags"]
        return [flag for flag in flags if flag["kind"] == "repeat_harvest"]

    assert repeats("RS-A") == []
    (flag,) = repeats("RS-B")
    assert flag["subject"] == f"01/{RAPESEED}/10/RS-B"
    assert flag["value"] == 12.0 and flag["expected"] == [150.0, 150.0]
    assert f"parcel {p1}" in flag["message"] and "RS-A" in flag["message"]
    # A year later is the next season: nothing doubtful.
    assert repeats("RS-C") == []
    # The parcel's recall shows it too, and the consumer page says it in the reader's words.
    assert "repeat_harvest" in {
        f["kind"] for f in graph(client, f"/api/v1/trace/parcels/{p1}")["flags"]
    }
    page = client.get(f"/01/{RAPESEED}/10/RS-B", headers={"Accept": "text/html"})
    assert "12 天前已采收过这种作物" in page.text
    # Nothing was corrected: the timeline does not say "corrected".
    assert "data-timeline-note" in page.text and "更正" not in page.text


def test_a_recall_lists_items_up_to_a_limit(
    client: TestClient, world: World, chain: Chain, monkeypatch: Any
) -> None:
    from digital_village.trace import tracing

    monkeypatch.setattr(tracing, "MAX_UNITS", 3)
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    body = graph(client, f"/api/v1/trace/parcels/{chain.own[0]}")
    assert len(ids(body, "unit")) == 3
    assert body["truncated"] == {"units_shown": 3, "units": 4}
    assert ids(body, "lot") == {RS, OIL_LOT, BOTTLES}


def test_mass_balance_weighs_each_product_against_all_the_inputs(
    client: TestClient, world: World, chain: Chain
) -> None:
    cake = client.post(
        "/api/v1/products",
        json={"gtin": "96385074", "name": "菜籽饼", "category": "other"},
        headers=world.auth("manager"),
    )
    assert cake.status_code == 201, cake.text
    cake_gtin = cake.json()["gtin"]
    p1, p2 = chain.own[0], chain.own[1]
    events = [
        builders.harvest(
            gtin=RAPESEED, lot="RS-A", kilograms=1000, dkbms=[p1], when=at(5, 20), base_url=BASE
        ),
        builders.harvest(
            gtin=RAPESEED, lot="RS-B", kilograms=1000, dkbms=[p2], when=at(5, 20), base_url=BASE
        ),
        # 760 L of oil and 1,150 kg of cake from 2,000 kg of seed: 0.38 L/kg, as it should be.
        builders.transformation(
            step="pressing",
            inputs=[(RAPESEED, "RS-A", 1000.0, "KGM"), (RAPESEED, "RS-B", 1000.0, "KGM")],
            outputs=[(OIL, "OIL-AB", 760.0, "LTR"), (cake_gtin, "CAKE-AB", 1150.0, "KGM")],
            when=at(6, 3),
            base_url=BASE,
        ),
    ]
    assert capture_doc(client, world, "manager", events).status_code == 202
    # The cake is not oil; and a recall from one of the two seed lots still weighs the pressing
    # against both (760 L from 1,000 kg alone would be 0.76 L/kg).
    for path, params in (
        (f"/api/v1/trace/{OIL}/OIL-AB", {}),
        (f"/api/v1/trace/{RAPESEED}/RS-A", {"direction": "forward"}),
        (f"/api/v1/trace/parcels/{p2}", {}),
    ):
        assert graph(client, path, **params)["flags"] == [], path
    # Twice the oil is flagged, whichever way the pressing is reached.
    events[2]["outputQuantityList"][0]["quantity"] = 1520.0
    events[2]["outputQuantityList"][0]["epcClass"] = f"{BASE}/01/{OIL}/10/OIL-AB2"
    events[2]["outputQuantityList"][1]["epcClass"] = f"{BASE}/01/{cake_gtin}/10/CAKE-AB2"
    events[2]["inputQuantityList"] = [
        {"epcClass": f"{BASE}/01/{RAPESEED}/10/RS-C", "quantity": 1000.0, "uom": "KGM"},
        {"epcClass": f"{BASE}/01/{RAPESEED}/10/RS-D", "quantity": 1000.0, "uom": "KGM"},
    ]
    more = [
        builders.harvest(
            gtin=RAPESEED, lot="RS-C", kilograms=1000, dkbms=[p1], when=at(5, 21), base_url=BASE
        ),
        builders.harvest(
            gtin=RAPESEED, lot="RS-D", kilograms=1000, dkbms=[p2], when=at(5, 21), base_url=BASE
        ),
        events[2],
    ]
    assert capture_doc(client, world, "manager", more).status_code == 202
    for path, params in (
        (f"/api/v1/trace/{OIL}/OIL-AB2", {}),
        (f"/api/v1/trace/{RAPESEED}/RS-C", {"direction": "forward"}),
    ):
        flags = graph(client, path, **params)["flags"]
        # RS-C and RS-D cut the fields of RS-A and RS-B again a day later: doubtful too.
        repeats = [f["subject"] for f in flags if f["kind"] == "repeat_harvest"]
        assert f"01/{RAPESEED}/10/RS-C" in repeats, path
        balances = [(f["kind"], f["value"]) for f in flags if f["kind"] != "repeat_harvest"]
        assert balances == [("mass_balance", 0.76)], path
