"""Test data built through the same services the API uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import Database
from digital_village.iot.models import Device
from digital_village.regions import service as regions
from digital_village.regions.uscc import compute_check_character
from digital_village.tokens.service import issue_token

if TYPE_CHECKING:
    from tests.conftest import World

VILLAGE = "510603101201"
GROUP = "51060310120101"
OTHER_VILLAGE = "510603101202"


def make_uscc(serial: int) -> str:
    """A valid 统一社会信用代码 for a farmers' cooperative, distinct per serial."""
    first17 = f"93510603MA6{serial:06d}"
    return first17 + compute_check_character(first17)


def build_world(db: Database) -> World:
    from tests.conftest import World

    operator = Actor.operator()
    with db.transaction() as session:
        regions.seed_jingyang(session=session)
        regions.add_region(session=session, code=VILLAGE, name="民安村", actor=operator)
        regions.add_region(session=session, code=GROUP, name="一组", actor=operator)
        regions.add_region(session=session, code=OTHER_VILLAGE, name="清平村", actor=operator)
        coop_a = regions.register_cooperative(
            session=session,
            uscc=make_uscc(1),
            name="民安油菜专业合作社",
            region_code=VILLAGE,
            actor=operator,
        )
        coop_b = regions.register_cooperative(
            session=session,
            uscc=make_uscc(2),
            name="清平水稻专业合作社",
            region_code=OTHER_VILLAGE,
            actor=operator,
        )
        household_a = regions.register_household(
            session=session,
            region_code=GROUP,
            name="王建国",
            phone="13808380001",
            cooperative_id=coop_a.id,
            actor=operator,
        )
        household_b = regions.register_household(
            session=session,
            region_code=OTHER_VILLAGE,
            name="李秀英",
            phone="13808380002",
            cooperative_id=coop_b.id,
            actor=operator,
        )
        device_a = Device(cooperative_id=coop_a.id, name="soil probe A", model="DL-5TM")
        device_b = Device(cooperative_id=coop_b.id, name="soil probe B", model="DL-5TM")
        session.add_all([device_a, device_b])
        session.flush()
        tokens = {
            "admin": issue_token(session=session, role=Role.ADMIN, actor=operator).token,
            "manager": issue_token(
                session=session, role=Role.MANAGER, actor=operator, cooperative=coop_a.uscc
            ).token,
            "farmer": issue_token(
                session=session, role=Role.FARMER, actor=operator, household=str(household_a.id)
            ).token,
            "device": issue_token(
                session=session, role=Role.DEVICE, actor=operator, device_id=device_a.id
            ).token,
        }
        return World(
            coop_a=coop_a.id,
            coop_b=coop_b.id,
            household_a=household_a.id,
            household_b=household_b.id,
            device_a=device_a.id,
            device_b=device_b.id,
            tokens=tokens,
        )
