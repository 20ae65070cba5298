"""A product's name, category and net content changed through PATCH /api/v1/products/{gtin}:
each change is a `trace.product.changed` entry on the product's chain holding all its facts,
the row names it, and a refused change stores nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from digital_village import audit
from digital_village.config import Settings
from tests.conftest import World
from tests.trace.conftest import BOTTLE, OIL, OTHER_COOP_SEED, RAPESEED, Chain, capture_doc, season


def patch(client: TestClient, world: World, gtin: str, role: str = "manager", **body: Any) -> Any:
    return client.patch(f"/api/v1/products/{gtin}", json=body, headers=world.auth(role))


def entries(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM ledger_entry")).scalar_one())


def entry(client: TestClient, seq: int) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(client.get(f"/api/v1/ledger/entries/{seq}").content)
    return found


def test_a_change_is_an_entry_on_the_products_chain(
    client: TestClient, chain: Chain, session: Session, settings: Settings
) -> None:
    world = chain.world
    registered = client.get(f"/api/v1/products/{BOTTLE}").json()
    response = patch(client, world, BOTTLE, name="天府菜油 4.5 L", net_quantity=4.5, net_unit="LTR")
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["name"] == "天府菜油 4.5 L" and changed["net_quantity"] == 4.5
    assert changed["ledger_seq"] > registered["ledger_seq"]
    assert changed["proof"] == f"/api/v1/ledger/entries/{changed['ledger_seq']}/proof"
    recorded = entry(client, changed["ledger_seq"])
    assert recorded["kind"] == "trace.product.changed"
    assert recorded["chain"]["key"] == f"product:{BOTTLE}"
    assert recorded["data"] == {
        **entry(client, registered["ledger_seq"])["data"],
        "name": "天府菜油 4.5 L",
        "netContent": {"value": 4.5, "unit": "LTR"},
    }
    # The same facts again: nothing new on the ledger, the product as it is.
    before = entries(session)
    again = patch(client, world, BOTTLE, name="天府菜油 4.5 L", category="packaged")
    assert again.status_code == 200 and again.json() == changed
    assert entries(session) == before
    # The ranges alone are no fact on the ledger; net content given as null is removed.
    ranges = patch(client, world, BOTTLE, ratio={"min": 0.8, "max": 1.0})
    assert ranges.json()["ratio"] == {"min": 0.8, "max": 1.0} and entries(session) == before
    cleared = patch(client, world, BOTTLE, net_quantity=None, net_unit=None).json()
    assert cleared["net_quantity"] is None and cleared["ledger_seq"] > changed["ledger_seq"]
    assert entry(client, cleared["ledger_seq"])["data"]["netContent"] is None
    report = audit.audit(session, origin=settings.ledger_origin)
    assert report.ok, report.problems


@pytest.mark.parametrize(
    ("gtin", "body", "status", "field", "said"),
    [
        (OIL, {"name": "  "}, 422, "name", "must not be empty"),
        (OIL, {"name": ""}, 422, "name", "must not be empty"),
        (OIL, {"category": "snacks"}, 422, "category", "unknown product category"),
        (
            RAPESEED,
            {"net_quantity": 5, "net_unit": "LTR"},
            422,
            "net_quantity",
            "counted in pieces",
        ),
        (BOTTLE, {"net_quantity": 5}, 422, "net_unit", "together"),
        (BOTTLE, {"net_quantity": 0, "net_unit": "LTR"}, 422, "body/net_quantity", ""),
        (RAPESEED, {"unit": "LTR"}, 409, "unit", "has lots counted in KGM"),
        (OTHER_COOP_SEED, {"name": "别社的稻种"}, 403, None, ""),
    ],
)
def test_a_refused_change_names_its_field_and_stores_nothing(
    client: TestClient,
    chain: Chain,
    session: Session,
    gtin: str,
    body: dict[str, Any],
    status: int,
    field: str | None,
    said: str,
) -> None:
    assert capture_doc(client, chain.world, "manager", season(chain)).status_code == 202
    before = entries(session)
    shown = client.get(f"/api/v1/products/{gtin}").json()
    response = patch(client, chain.world, gtin, **body)
    assert response.status_code == status, response.text
    problem = response.json()
    assert said in problem["detail"]
    if field is not None and field.startswith("body/"):
        assert problem["errors"][0]["location"] == field
    elif field is not None:
        assert problem["field"] == field
    assert entries(session) == before
    assert client.get(f"/api/v1/products/{gtin}").json() == shown


def test_the_unit_changes_only_while_the_product_has_no_lots(
    client: TestClient, chain: Chain
) -> None:
    changed = patch(client, chain.world, OIL, unit="KGM", category="other")
    assert changed.status_code == 200, changed.text
    assert (changed.json()["unit"], changed.json()["category"]) == ("KGM", "other")
    pieces = patch(client, chain.world, OIL, unit="H87", net_quantity=5, net_unit="LTR")
    assert pieces.status_code == 200, pieces.text
    # Net content is only for products counted in pieces: the unit is named as the fault.
    back = patch(client, chain.world, OIL, unit="LTR")
    assert back.status_code == 422 and back.json()["field"] == "unit"


def test_an_admin_changes_any_product(client: TestClient, chain: Chain) -> None:
    response = patch(client, chain.world, OTHER_COOP_SEED, "admin", name="清平杂交稻种")
    assert response.status_code == 200 and response.json()["name"] == "清平杂交稻种"
