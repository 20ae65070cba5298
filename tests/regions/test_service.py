"""Regions, cooperatives and households through their service and API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.errors import Conflict, Invalid
from digital_village.regions import service as regions
from tests.api.test_app import assert_problem
from tests.conftest import World
from tests.factories import GROUP, VILLAGE, make_uscc


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("51060310120", "11 digits"),
        ("5106031012O1", "only digits"),
        ("51060310120100", "ends in 00"),
        ("990603", "province"),
    ],
)
def test_malformed_region_codes_are_refused(code: str, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        regions.parse_region_code(code)


def test_parent_of_each_level() -> None:
    assert regions.parse_region_code("510603").parent_code is None
    assert regions.parse_region_code("510603101").parent_code == "510603"
    assert regions.parse_region_code("510603101201").parent_code == "510603101"
    assert regions.parse_region_code(GROUP).parent_code == VILLAGE


def test_seed_is_idempotent(session: Session) -> None:
    first = regions.seed_jingyang(session=session)
    assert first in (0, 14)
    assert regions.seed_jingyang(session=session) == 0
    townships = regions.list_regions(session=session, parent_code="510603")
    assert len(townships) == 13
    assert {t.name for t in townships} >= {"孝泉镇", "黄许镇", "和新镇", "旌阳街道"}


def test_household_codes_follow_the_contracting_group(session: Session, world: World) -> None:
    operator = Actor.operator()
    first = regions.register_household(
        session=session,
        region_code=GROUP,
        name="周德明",
        phone=None,
        cooperative_id=None,
        actor=operator,
    )
    second = regions.register_household(
        session=session,
        region_code=GROUP,
        name="吴淑珍",
        phone=None,
        cooperative_id=None,
        actor=operator,
    )
    assert first.cbfbm[:14] == GROUP and second.cbfbm[:14] == GROUP
    assert int(second.cbfbm[14:]) == int(first.cbfbm[14:]) + 1
    village_household = regions.register_household(
        session=session,
        region_code=VILLAGE,
        name="孙光明",
        phone=None,
        cooperative_id=None,
        actor=operator,
    )
    assert village_household.cbfbm.startswith(VILLAGE + "00")


def test_cooperative_check_character_is_enforced(session: Session, world: World) -> None:
    good = make_uscc(77)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(Invalid, match="统一社会信用代码"):
        regions.register_cooperative(
            session=session, uscc=bad, name="x", region_code=VILLAGE, actor=Actor.operator()
        )
    regions.register_cooperative(
        session=session, uscc=good, name="x", region_code=VILLAGE, actor=Actor.operator()
    )
    with pytest.raises(Conflict):
        regions.register_cooperative(
            session=session, uscc=good, name="y", region_code=VILLAGE, actor=Actor.operator()
        )


def test_invalid_cooperative_over_api_names_the_problem(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/cooperatives",
        json={"uscc": "93510603MA6000001Z", "name": "x", "region_code": VILLAGE},
        headers=world.auth("admin"),
    )
    assert_problem(response, 422, "统一社会信用代码")


def test_household_personal_data_only_for_its_scope(client: TestClient, world: World) -> None:
    mine = client.get("/api/v1/households", headers=world.auth("manager")).json()
    assert [h["id"] for h in mine] == [world.household_a]
    assert mine[0]["name"] == "王建国"
    assert (
        client.get(
            f"/api/v1/households/{world.household_b}", headers=world.auth("manager")
        ).status_code
        == 403
    )
    assert (
        client.get(
            f"/api/v1/households/{world.household_a}", headers=world.auth("farmer")
        ).status_code
        == 200
    )
    assert client.get("/api/v1/households").status_code == 401
    public = client.get("/api/v1/cooperatives").text + client.get("/api/v1/regions").text
    assert "王建国" not in public and "13808380001" not in public


def test_mask_name() -> None:
    assert regions.mask_name("王建国") == "王**"
    assert regions.mask_name("李") == "李*"
