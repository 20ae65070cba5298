"""Every fact a page shows is paired with the ledger entry that records it, and a row edited
behind the application's back shows as a fact that fails — as a reader's browser concludes
(tests/web/facts_check.py applies the rules of static/verify-panel.js; tests/e2e runs them)."""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely import affinity
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from digital_village.demo import oil_season as seasons
from digital_village.jsonpointer import resolve
from digital_village.ledger.log import Ledger
from digital_village.parcels import recorded as parcel_records
from digital_village.web import consumer, facts, history, origin
from digital_village.web.facts import Fact
from tests.web.conftest import Pages, html_of
from tests.web.facts_check import PageFact, check_page, failed, page_facts


def vkey(pages: Pages) -> str:
    settings = pages.settings
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin).vkey


def facts_of(client: TestClient, pages: Pages, path: str) -> list[PageFact]:
    return check_page(client, html_of(client, path), vkey(pages))


def shown(facts: list[PageFact], text: str) -> list[PageFact]:
    return [fact for fact in facts if fact.text == text]


def test_every_fact_of_an_honest_consumer_page_is_proven_and_as_recorded(
    pages_client: TestClient, pages_db: Pages
) -> None:
    facts = facts_of(pages_client, pages_db, pages_db.bottle)
    assert failed(facts) == []
    claimed = {path for fact in facts for path in fact.claims}
    for path in (
        "/data/name",
        "/data/cooperative",
        "/data/gtin",
        "/data/land_use",
        "/data/area_mu",
        "/data/geometry_sha256",
        "/data/origin",
        "/data/basis",
        "/data/commitments",
        "/data/issuer",
    ):
        assert path in claimed, path
    assert any("/effects/lots/" in path and path.endswith("/produced") for path in claimed)
    assert any(path.endswith("/contractor") for path in claimed)
    # Each step of the history is its event's entry.
    steps = {fact.index for fact in facts if fact.attributes.get("class") == "seq"}
    assert len(steps) >= 12
    # One request proves them all.
    assert len({fact.index for fact in facts}) < len(facts)


def test_every_fact_of_the_parcel_page_is_proven(pages_client: TestClient, pages_db: Pages) -> None:
    facts = facts_of(pages_client, pages_db, f"/p/{pages_db.season.parcels[0]}")
    assert failed(facts) == []
    claimed = {path for fact in facts for path in fact.claims}
    assert {"/data/dkbm", "/data/area_mu", "/data/land_use", "/data/geometry_sha256"} <= claimed
    assert "data-verify-facts" in html_of(pages_client, f"/p/{pages_db.season.parcels[0]}")


@pytest.mark.parametrize(
    ("edit", "shown_text", "pointer"),
    [
        ("UPDATE trace_certificate SET origin = '黑龙江五常'", "黑龙江五常", "/data/origin"),
        (
            "UPDATE trace_product SET name = '五常大米' WHERE gtin = :bottle",
            "五常大米",
            "/data/name",
        ),
        (
            "UPDATE trace_lot SET produced = 600 WHERE gtin = :bottle",
            "600 瓶",
            "/produced",
        ),
        ("UPDATE parcel SET land_use = '0101' WHERE dkbm = :dkbm", "水田", "/data/land_use"),
        ("UPDATE parcel SET area_mu = 9.5 WHERE dkbm = :dkbm", "9.50 亩", "/data/area_mu"),
    ],
)
def test_an_insiders_edit_of_a_row_fails_that_fact_on_the_page(
    pages_client: TestClient,
    pages_db: Pages,
    pages_connection: Connection,
    edit: str,
    shown_text: str,
    pointer: str,
) -> None:
    dkbm = pages_db.season.parcels[0]
    pages_connection.execute(text(edit), {"bottle": seasons.BOTTLE, "dkbm": dkbm})
    facts = facts_of(pages_client, pages_db, pages_db.bottle)
    edited = shown(facts, shown_text)
    assert edited, f"the page does not show {shown_text}"
    assert all(fact.state == "failed" for fact in edited)
    assert all(pointer in fact.reason for fact in edited), [fact.reason for fact in edited]
    # Everything else still stands.
    assert {fact.text for fact in failed(facts)} == {shown_text}


@pytest.mark.parametrize(
    ("edit", "shown_text"),
    [
        ("UPDATE parcel SET land_use = '0101' WHERE dkbm = :dkbm", "水田"),
        ("UPDATE parcel SET area_mu = 9.5 WHERE dkbm = :dkbm", "9.50 亩"),
    ],
)
def test_the_parcel_page_fails_an_edited_parcel_row(
    pages_client: TestClient,
    pages_db: Pages,
    pages_connection: Connection,
    edit: str,
    shown_text: str,
) -> None:
    dkbm = pages_db.season.parcels[0]
    pages_connection.execute(text(edit), {"dkbm": dkbm})
    facts = facts_of(pages_client, pages_db, f"/p/{dkbm}")
    assert [fact.text for fact in failed(facts)] == [shown_text]


def test_a_moved_parcel_fails_its_code_on_both_pages(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    dkbm = pages_db.season.parcels[0]
    wkb = pages_connection.execute(
        text("SELECT geometry_wkb FROM parcel WHERE dkbm = :d"), {"d": dkbm}
    ).scalar_one()
    moved = shapely.to_wkb(affinity.translate(shapely.from_wkb(bytes(wkb)), xoff=0.0003))
    pages_connection.execute(
        text("UPDATE parcel SET geometry_wkb = :w WHERE dkbm = :d"), {"w": moved, "d": dkbm}
    )
    for path in (pages_db.bottle, f"/p/{dkbm}"):
        facts = failed(facts_of(pages_client, pages_db, path))
        assert [fact.text for fact in facts] == [dkbm], path
        assert "/data/geometry_sha256" in facts[0].reason


def test_unreadable_geometry_bytes_fail_the_code_and_the_page_still_shows(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    if pages_connection.dialect.name == "postgresql":
        pytest.skip("PostGIS refuses such bytes: its trigger reads them into parcel.geom")
    dkbm = pages_db.season.parcels[0]
    pages_connection.execute(
        text("UPDATE parcel SET geometry_wkb = :w WHERE dkbm = :d"), {"w": b"\x01junk", "d": dkbm}
    )
    facts = failed(facts_of(pages_client, pages_db, pages_db.bottle))
    assert [fact.text for fact in facts] == [dkbm]


def test_an_edited_entry_fails_the_facts_it_records(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    html = html_of(pages_client, pages_db.bottle)
    (certificate,) = {fact.index for fact in page_facts(html) if "/data/origin" in fact.claims}
    body = pages_connection.execute(
        text("SELECT body FROM ledger_entry WHERE seq = :s"), {"s": certificate}
    ).scalar_one()
    forged = bytes(body).replace("民安村".encode(), "五常市".encode())
    pages_connection.execute(
        text("UPDATE ledger_entry SET body = :b WHERE seq = :s"), {"b": forged, "s": certificate}
    )
    broken = failed(check_page(pages_client, html, vkey(pages_db)))
    assert {fact.index for fact in broken} == {certificate}
    assert all("does not lead to the root" in fact.reason for fact in broken)


def test_facts_are_marked_with_their_entry_and_claims(
    pages_client: TestClient, pages_db: Pages
) -> None:
    html = html_of(pages_client, pages_db.bottle)
    assert re.search(
        r'<span data-origin data-fact="\d+" data-fact-claims="\{&#34;/data/origin&#34;:'
        r'&#34;旌阳区孝泉镇民安村&#34;\}">旌阳区孝泉镇民安村</span>',
        html,
    )
    assert "data-verify-facts" in html


def test_the_charts_rest_on_the_seal_entries_they_are_drawn_from(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    html = html_of(pages_client, pages_db.bottle)
    sealed = [fact for fact in page_facts(html) if "data-sealed" in fact.attributes]
    assert len(sealed) == 2 and all(len(fact.more) > 200 for fact in sealed)
    one = sealed[0].more[100]
    body = pages_connection.execute(
        text("SELECT body FROM ledger_entry WHERE seq = :s"), {"s": one}
    ).scalar_one()
    forged = bytes(body).replace(b'"maxValue":', b'"maxValue":1', 1)
    pages_connection.execute(
        text("UPDATE ledger_entry SET body = :b WHERE seq = :s"), {"b": forged, "s": one}
    )
    broken = failed(check_page(pages_client, html, vkey(pages_db)))
    assert [fact.attributes.get("data-sealed", "?") for fact in broken] == [None]
    assert f"entry {one}" in broken[0].reason


def test_facts_recorded_before_entries_carried_them_are_marked_so() -> None:
    """Entries made by an older version lack effects and crops: the page says the fact cannot
    be checked (still naming the entry, whose own proof is checked), never that it is verified."""
    lot = SimpleNamespace(id=7, gtin="06901234001037", lot="B1", produced=6.0)
    older = history.Chain({}, [], {40: {"captureID": None, "event": {}}}, {}, {7: (40, 40)})
    assert older.lot_fact(lot) == Fact(40, recorded=False)
    newer = history.Chain({}, [], {41: {"event": {}, "effects": {"lots": {}}}}, {}, {7: (41, 41)})
    assert newer.lot_fact(lot).claims == {"/data/effects/lots/06901234001037~1B1/produced": 6.0}
    parcel = SimpleNamespace(
        dkbm="5106031012010100001",
        fbfbm="51060310120101",
        geometry_wkb=b"\x01",
        area_mu=5.88,
        land_use="0103",
    )
    registered = {"dkbm": parcel.dkbm, "land_use": "0103", "area_mu": 5.88}
    old = parcel_records.fold(parcel.dkbm, [(3, "parcel.registered", registered)])
    shown = origin.parcel_facts(parcel, old, crop="油菜", on=dt.date(2026, 3, 1))
    assert shown["crop_fact"] == Fact(3, recorded=False)
    new = parcel_records.fold(
        parcel.dkbm, [(3, "parcel.registered", {**registered, "crops": {"2025-winter": "油菜"}})]
    )
    shown = origin.parcel_facts(parcel, new, crop="油菜", on=dt.date(2026, 3, 1))
    assert shown["crop_fact"].claims == {"/data/crops/2025-winter": "油菜"}
    assert "data-fact-unrecorded" in facts.attrs(Fact(3, recorded=False))


def test_the_product_page_claims_its_facts_and_fails_an_edited_name(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    path = f"/01/{seasons.BOTTLE}"
    facts = facts_of(pages_client, pages_db, path)
    assert failed(facts) == [] and len(facts) >= 5
    claimed = {path for fact in facts for path in fact.claims}
    assert {"/data/name", "/data/category", "/data/cooperative", "/data/gtin"} <= claimed
    assert any(path.endswith("/producedAt") for path in claimed)
    pages_connection.execute(
        text("UPDATE trace_product SET name = '五常大米' WHERE gtin = :g"), {"g": seasons.BOTTLE}
    )
    assert [fact.text for fact in failed(facts_of(pages_client, pages_db, path))] == ["五常大米"]


def test_a_bottles_serial_is_claimed_against_the_event_that_commissioned_it(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    honest = facts_of(pages_client, pages_db, pages_db.bottle)
    (serial,) = [fact for fact in honest if "data-serial" in fact.attributes]
    assert serial.state == "verified"
    first, lot = pages_db.season.serials[0], pages_db.season.bottle_lot
    key = f"/data/effects/units/{seasons.BOTTLE}~1{first}"
    assert serial.claims == {key: f"{seasons.BOTTLE}/{lot}"}
    # Shown in another lot (its row moved), the claim is no longer what the entry records.
    with Session(pages_connection) as session:
        moved = consumer.unit_fact(
            session=session, seq=serial.index, gtin=seasons.BOTTLE, serial=first, lot="B2026-99"
        )
    body = pages_connection.execute(
        text("SELECT body FROM ledger_entry WHERE seq = :s"), {"s": serial.index}
    ).scalar_one()
    assert resolve(json.loads(bytes(body)), key) == (True, f"{seasons.BOTTLE}/{lot}")
    assert moved.claims == {key: f"{seasons.BOTTLE}/B2026-99"}
