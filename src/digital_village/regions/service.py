"""The administrative tree, cooperatives and households: every query of their tables."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.errors import Conflict, Forbidden, Invalid, NotFound
from digital_village.regions.models import CODE_LENGTHS, Cooperative, Household, Region, RegionLevel
from digital_village.regions.uscc import USCCError, validate_uscc

JINGYANG_CODE = "510603"
JINGYANG_NAME = "旌阳区"
# 旌阳区's townships and their statistical codes.
JINGYANG_TOWNSHIPS: tuple[tuple[str, str], ...] = (
    ("510603001", "旌阳街道"),
    ("510603004", "旌东街道"),
    ("510603006", "八角井街道"),
    ("510603009", "东湖街道"),
    ("510603010", "天元街道"),
    ("510603011", "孝感街道"),
    ("510603100", "黄许镇"),
    ("510603101", "孝泉镇"),
    ("510603103", "柏隆镇"),
    ("510603108", "德新镇"),
    ("510603110", "双东镇"),
    ("510603111", "新中镇"),
    ("510603117", "和新镇"),
)
_PARENT_LENGTH = {9: 6, 12: 9, 14: 12}


@dataclass(frozen=True)
class RegionCode:
    """A parsed region code: its level and its parent's code."""

    code: str
    level: RegionLevel
    parent_code: str | None


def parse_region_code(code: str) -> RegionCode:
    """Check a region code's form; raise Invalid naming what is wrong."""
    if not code.isascii() or not code.isdigit():
        raise Invalid(f"region code {code!r} must contain only digits")
    level = CODE_LENGTHS.get(len(code))
    if level is None:
        raise Invalid(
            f"region code {code!r} has {len(code)} digits; expected 6 (county), "
            "9 (township), 12 (village) or 14 (group)"
        )
    if level is RegionLevel.COUNTY and not 11 <= int(code[:2]) <= 82:
        raise Invalid(f"county code {code!r} does not start with a GB/T 2260 province code")
    if level is RegionLevel.GROUP and code.endswith("00"):
        raise Invalid(f"group code {code!r} ends in 00, which stands for the village itself")
    parent_length = _PARENT_LENGTH.get(len(code))
    return RegionCode(code, level, code[:parent_length] if parent_length else None)


def get_region(*, session: Session, code: str) -> Region:
    """The region with this code, or NotFound."""
    region = session.get(Region, code)
    if region is None:
        raise NotFound(f"no region with code {code}")
    return region


def add_region(*, session: Session, code: str, name: str, actor: Actor) -> Region:
    """Add a county, township, village or group whose parent already exists."""
    actor.require_admin()
    parsed = parse_region_code(code)
    name = name.strip()
    if not name:
        raise Invalid("region name must not be empty")
    if session.get(Region, code) is not None:
        raise Conflict(f"region {code} already exists")
    if parsed.parent_code is not None and session.get(Region, parsed.parent_code) is None:
        raise Invalid(
            f"parent region {parsed.parent_code} of {code} does not exist; add it first",
            parent_code=parsed.parent_code,
        )
    region = Region(code=code, level=parsed.level, name=name, parent_code=parsed.parent_code)
    session.add(region)
    session.flush()
    return region


def list_regions(
    *, session: Session, parent_code: str | None = None, level: RegionLevel | None = None
) -> Sequence[Region]:
    """Regions ordered by code, optionally the children of one region or one level only."""
    query = select(Region).order_by(Region.code)
    if parent_code is not None:
        query = query.where(Region.parent_code == parent_code)
    if level is not None:
        query = query.where(Region.level == level)
    return session.scalars(query).all()


def seed_jingyang(*, session: Session) -> int:
    """Insert 旌阳区 and its 13 townships where missing; return how many were added."""
    added = 0
    rows = [(JINGYANG_CODE, JINGYANG_NAME), *JINGYANG_TOWNSHIPS]
    for code, name in rows:
        if session.get(Region, code) is None:
            parsed = parse_region_code(code)
            session.add(
                Region(code=code, level=parsed.level, name=name, parent_code=parsed.parent_code)
            )
            added += 1
    session.flush()
    return added


def register_cooperative(
    *, session: Session, uscc: str, name: str, region_code: str, actor: Actor
) -> Cooperative:
    """Register a cooperative by its 统一社会信用代码 (validated by its check character)."""
    actor.require_admin()
    try:
        code = validate_uscc(uscc.strip().upper()).code
    except USCCError as error:
        raise Invalid(f"统一社会信用代码 {uscc!r} is not valid: {error}") from error
    region = get_region(session=session, code=region_code)
    if region.level not in (RegionLevel.TOWNSHIP, RegionLevel.VILLAGE):
        raise Invalid(f"a cooperative is registered in a township or village, not a {region.level}")
    if session.scalar(select(Cooperative).where(Cooperative.uscc == code)) is not None:
        raise Conflict(f"a cooperative with 统一社会信用代码 {code} is already registered")
    if not name.strip():
        raise Invalid("cooperative name must not be empty")
    cooperative = Cooperative(uscc=code, name=name.strip(), region_code=region.code)
    session.add(cooperative)
    session.flush()
    return cooperative


def get_cooperative(*, session: Session, cooperative_id: int) -> Cooperative:
    """The cooperative with this id, or NotFound."""
    cooperative = session.get(Cooperative, cooperative_id)
    if cooperative is None:
        raise NotFound(f"no cooperative with id {cooperative_id}")
    return cooperative


def find_cooperative(*, session: Session, key: str) -> Cooperative:
    """A cooperative by its 统一社会信用代码 or by its numeric id."""
    if key.isdigit() and len(key) < 18:
        return get_cooperative(session=session, cooperative_id=int(key))
    cooperative = session.scalar(select(Cooperative).where(Cooperative.uscc == key.upper()))
    if cooperative is None:
        raise NotFound(f"no cooperative with 统一社会信用代码 {key}")
    return cooperative


def list_cooperatives(*, session: Session) -> Sequence[Cooperative]:
    """All cooperatives, by id."""
    return session.scalars(select(Cooperative).order_by(Cooperative.id)).all()


def cooperatives_by_id(*, session: Session, ids: Sequence[int]) -> dict[int, Cooperative]:
    """The cooperatives with these ids, by id (unknown ids are left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    query = select(Cooperative).where(Cooperative.id.in_(wanted))
    return {cooperative.id: cooperative for cooperative in session.scalars(query)}


def named(cooperative: Cooperative) -> str:
    """A cooperative as people name it: its name and 统一社会信用代码, never its row id."""
    return f"{cooperative.name} ({cooperative.uscc})"


def cooperatives_with_members(*, session: Session) -> list[tuple[Cooperative, int]]:
    """All cooperatives, by id, each with the number of its member households."""
    members = (
        select(Household.cooperative_id, func.count().label("members"))
        .where(Household.cooperative_id.is_not(None))
        .group_by(Household.cooperative_id)
        .subquery()
    )
    query = (
        select(Cooperative, func.coalesce(members.c.members, 0))
        .outerjoin(members, members.c.cooperative_id == Cooperative.id)
        .order_by(Cooperative.id)
    )
    return [(cooperative, int(count)) for cooperative, count in session.execute(query)]


def fbfbm_of_region(region: Region) -> str:
    """The 14-digit 发包方编码 of a village (group 00) or group."""
    if region.level is RegionLevel.VILLAGE:
        return region.code + "00"
    if region.level is RegionLevel.GROUP:
        return region.code
    raise Invalid(
        f"region {region.code} is a {region.level}; land is contracted by a village or group"
    )


def register_household(
    *,
    session: Session,
    region_code: str,
    name: str,
    phone: str | None,
    cooperative_id: int | None,
    actor: Actor,
) -> Household:
    """Register a household in a village or group and give it the next 承包方编码."""
    if cooperative_id is None:
        actor.require_admin()
    else:
        actor.require_cooperative(cooperative_id)
        cooperative = get_cooperative(session=session, cooperative_id=cooperative_id)
        # A manager registers households of its own village (or township) only.
        if not actor.is_admin and not region_code.startswith(cooperative.region_code):
            raise Forbidden(
                f"a manager registers households in its cooperative's region "
                f"{cooperative.region_code} only, not in {region_code}",
                role=actor.role.value,
            )
    region = get_region(session=session, code=region_code)
    fbfbm = fbfbm_of_region(region)
    if not name.strip():
        raise Invalid("household name must not be empty", field="name")
    if len(name.strip()) > 100 or any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise Invalid(
            "household name must be 1 to 100 characters without control characters (NUL, …)",
            field="name",
        )
    last = session.scalar(
        select(func.max(Household.cbfbm)).where(Household.cbfbm.startswith(fbfbm))
    )
    sequence = int(last[14:]) + 1 if last else 1
    if sequence > 9999:
        raise Conflict(f"发包方 {fbfbm} has used all 9999 household codes")
    household = Household(
        cbfbm=f"{fbfbm}{sequence:04d}",
        region_code=region.code,
        name=name.strip(),
        phone=phone.strip() if phone else None,
        cooperative_id=cooperative_id,
    )
    session.add(household)
    session.flush()
    return household


def get_household(*, session: Session, household_id: int) -> Household:
    """The household with this id, or NotFound."""
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound(f"no household with id {household_id}")
    return household


def household_cooperatives(
    *, session: Session, household_ids: Sequence[int]
) -> dict[int, int | None]:
    """Household id → the cooperative it is a member of (None: none), for known households."""
    wanted = sorted(set(household_ids))
    found: dict[int, int | None] = {}
    for start in range(0, len(wanted), 900):
        query = select(Household.id, Household.cooperative_id).where(
            Household.id.in_(wanted[start : start + 900])
        )
        found.update({household_id: coop for household_id, coop in session.execute(query)})
    return found


def find_household(*, session: Session, key: str) -> Household:
    """A household by numeric id or by its 18-digit 承包方编码."""
    if key.isdigit() and len(key) == 18:
        household = session.scalar(select(Household).where(Household.cbfbm == key))
        if household is None:
            raise NotFound(f"no household with 承包方编码 {key}")
        return household
    if key.isdigit():
        return get_household(session=session, household_id=int(key))
    raise Invalid(f"household {key!r} is neither an id nor an 18-digit 承包方编码")


def update_household_contact(
    *, session: Session, household_id: int, phone: str | None, actor: Actor
) -> Household:
    """Change a household's phone: the household itself, its cooperative or an admin."""
    household = get_household(session=session, household_id=household_id)
    actor.require_household(household.id, household.cooperative_id)
    household.phone = phone.strip() if phone else None
    session.flush()
    return household


def list_households(
    *,
    session: Session,
    actor: Actor,
    cooperative_id: int | None = None,
    region_code: str | None = None,
) -> Sequence[Household]:
    """Households the actor may see: all for an admin, its own members for a manager; only
    those of ``region_code`` (a village, group or township, and the regions under it) if given."""
    query = select(Household).order_by(Household.id)
    if not actor.is_admin:
        actor.require_cooperative(actor.cooperative_id)
        query = query.where(Household.cooperative_id == actor.cooperative_id)
    elif cooperative_id is not None:
        query = query.where(Household.cooperative_id == cooperative_id)
    if region_code is not None:
        query = query.where(Household.region_code.startswith(region_code, autoescape=True))
    return session.scalars(query).all()


def mask_name(name: str) -> str:
    """A name as the public may see it: the first character, the rest starred (张** )."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)
