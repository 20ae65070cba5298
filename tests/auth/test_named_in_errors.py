"""Refusals name cooperatives by name and 统一社会信用代码 and households by 承包方编码, never
by the row ids people never see."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.auth.test_authorization_matrix import _neighbour, _parcel_body
from tests.conftest import World

ROW_ID = re.compile(r"\b(cooperative|household)s? \d{1,6}\b")


def test_a_managers_parcel_refusals_name_who_by_their_codes(
    client: TestClient, world: World
) -> None:
    manager = world.auth("manager")
    operated = client.post(
        "/api/v1/parcels",
        json=_parcel_body(0, operator_cooperative_id=world.coop_b),
        headers=manager,
    )
    assert operated.status_code == 403
    detail = operated.json()["detail"]
    assert "清平水稻专业合作社 (" in detail and not ROW_ID.search(detail), detail
    neighbour = _neighbour(client, world)
    held = client.post(
        "/api/v1/parcels", json=_parcel_body(0, contractor_household_id=neighbour), headers=manager
    )
    assert held.status_code == 403
    detail = held.json()["detail"]
    assert re.search(r"household \d{18} is not one of its members", detail), detail
    assert not ROW_ID.search(detail), detail
