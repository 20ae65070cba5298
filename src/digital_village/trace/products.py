"""Products, lots, serial units and 承诺达标合格证: every query of their tables and their rules.

Lots and units are created by captured EPCIS events (see :mod:`digital_village.trace.capture`);
this module only stores and reads them. Services never commit and raise domain errors.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.bulk import insert_rows
from digital_village.errors import Conflict, Invalid, NotFound
from digital_village.gs1.keys import DigitalLinkError, validate_gtin
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from digital_village.trace import recorded
from digital_village.trace.identifiers import COUNT_UNITS
from digital_village.trace.models import Certificate, Lot, Product, Unit

PRODUCT_UNITS: Final = frozenset({"KGM", "LTR", "H87"})
NET_UNITS: Final = frozenset({"KGM", "GRM", "LTR", "MLT"})
# Quantities are doubles; a lot is "used up" within this relative margin.
QUANTITY_EPSILON: Final = 1e-9


@dataclass(frozen=True)
class CategoryDefaults:
    """What a product category implies when the manager does not say otherwise."""

    unit: str
    yield_per_mu: tuple[float, float] | None = None
    ratio: tuple[float, float] | None = None


# Yields per 亩 of Sichuan fields and processing ratios (output per unit of input), generous
# enough that only a typing error or an impossible claim falls outside.
CATEGORIES: Final[dict[str, CategoryDefaults]] = {
    "rapeseed": CategoryDefaults("KGM", yield_per_mu=(80.0, 300.0)),  # 油菜籽, kg/亩
    "paddy": CategoryDefaults("KGM", yield_per_mu=(250.0, 800.0)),  # 稻谷, kg/亩
    "wheat": CategoryDefaults("KGM", yield_per_mu=(150.0, 650.0)),
    "rapeseed_oil": CategoryDefaults("LTR", ratio=(0.28, 0.48)),  # L of oil per kg of seed
    "rice": CategoryDefaults("KGM", ratio=(0.55, 0.75)),  # 出米率: kg of rice per kg of paddy
    # Serialised packs (bottles, bags): their net content against what went in.
    "packaged": CategoryDefaults("H87", ratio=(0.90, 1.01)),
    "other": CategoryDefaults("KGM"),
}


def normalise_gtin(gtin: str) -> str:
    """A GTIN-8/12/13/14 as GTIN-14; Invalid naming the fault (length, digits, check digit)."""
    try:
        return validate_gtin(gtin.strip())
    except DigitalLinkError as error:
        raise Invalid(f"GTIN {gtin!r} is not valid: {error}", field="gtin") from None


# --- products ---------------------------------------------------------------------------------


def register_product(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    gtin: str,
    name: str,
    category: str,
    cooperative_id: int,
    unit: str | None = None,
    net_quantity: float | None = None,
    net_unit: str | None = None,
    yield_per_mu: tuple[float, float] | None = None,
    ratio: tuple[float, float] | None = None,
) -> Product:
    """Register a cooperative's product under its GTIN and record it on the ledger."""
    actor.require_cooperative(cooperative_id)
    cooperative = regions.get_cooperative(session=session, cooperative_id=cooperative_id)
    gtin14 = normalise_gtin(gtin)
    defaults = check_facts(
        name=name, category=category, unit=unit, net_quantity=net_quantity, net_unit=net_unit
    )
    unit = unit or defaults.unit
    for label, value in (("yield_per_mu", yield_per_mu), ("ratio", ratio)):
        if value is not None and not 0 <= value[0] <= value[1]:
            raise Invalid(f"{label} range must be 0 <= min <= max, got {value}", field=label)
    if session.scalar(select(Product.id).where(Product.gtin == gtin14)) is not None:
        raise Conflict(f"a product with GTIN {gtin14} is already registered", gtin=gtin14)
    yield_range = yield_per_mu or defaults.yield_per_mu
    ratio_range = ratio or defaults.ratio
    entry = ledger.append(
        session,
        kind=recorded.PRODUCT_KIND,
        data=recorded.product_data(
            gtin=gtin14,
            name=name.strip(),
            category=category,
            unit=unit,
            net_quantity=net_quantity,
            net_unit=net_unit,
            uscc=cooperative.uscc,
        ),
        chain_key=recorded.product_chain(gtin14),
    )
    product = Product(
        gtin=gtin14,
        name=name.strip(),
        category=category,
        unit=unit,
        net_quantity=net_quantity,
        net_unit=net_unit,
        cooperative_id=cooperative_id,
        yield_min_per_mu=yield_range[0] if yield_range else None,
        yield_max_per_mu=yield_range[1] if yield_range else None,
        ratio_min=ratio_range[0] if ratio_range else None,
        ratio_max=ratio_range[1] if ratio_range else None,
        ledger_seq=entry.seq,
    )
    session.add(product)
    session.flush()
    return product


def check_facts(
    *,
    name: str,
    category: str,
    unit: str | None,
    net_quantity: float | None,
    net_unit: str | None,
    net_field: str = "unit",
) -> CategoryDefaults:
    """The rules of a product's recorded facts (name, category, unit, net content): Invalid
    naming the field at fault (``net_field`` when net content is given for a product not
    counted in pieces); the category's defaults otherwise."""
    if not name.strip():
        raise Invalid("product name must not be empty", field="name")
    defaults = CATEGORIES.get(category)
    if defaults is None:
        raise Invalid(
            f"unknown product category {category!r}; one of: {', '.join(CATEGORIES)}",
            field="category",
        )
    unit = unit or defaults.unit
    if unit not in PRODUCT_UNITS:
        raise Invalid(
            f"a product is counted in KGM, LTR or H87 (pieces), not {unit!r}", field="unit"
        )
    if (net_quantity is None) != (net_unit is None):
        raise Invalid("give net_quantity and net_unit together (e.g. 5 LTR)", field="net_unit")
    if net_quantity is not None:
        if unit not in COUNT_UNITS:
            raise Invalid(
                f"net content is for products counted in pieces (H87), not in {unit}",
                field=net_field,
            )
        if net_quantity <= 0 or net_unit not in NET_UNITS:
            raise Invalid(
                "net content must be a positive quantity in KGM, GRM, LTR or MLT", field="net_unit"
            )
    return defaults


def update_plausibility(
    *,
    session: Session,
    actor: Actor,
    gtin: str,
    yield_per_mu: tuple[float, float] | None,
    ratio: tuple[float, float] | None,
) -> Product:
    """Change a product's plausible yield and processing ranges (flags only; nothing refused)."""
    product = get_product(session=session, gtin=gtin)
    actor.require_cooperative(product.cooperative_id)
    for label, value in (("yield_per_mu", yield_per_mu), ("ratio", ratio)):
        if value is not None and not 0 <= value[0] <= value[1]:
            raise Invalid(f"{label} range must be 0 <= min <= max, got {value}", field=label)
    if yield_per_mu is not None:
        product.yield_min_per_mu, product.yield_max_per_mu = yield_per_mu
    if ratio is not None:
        product.ratio_min, product.ratio_max = ratio
    session.flush()
    return product


def get_product(*, session: Session, gtin: str) -> Product:
    """The product with this GTIN (any length, check digit validated), or NotFound."""
    gtin14 = normalise_gtin(gtin)
    product = session.scalar(select(Product).where(Product.gtin == gtin14))
    if product is None:
        raise NotFound(f"no product with GTIN {gtin14}")
    return product


def list_products(*, session: Session, cooperative_id: int | None = None) -> Sequence[Product]:
    """Products by GTIN, optionally of one cooperative."""
    query = select(Product).order_by(Product.gtin)
    if cooperative_id is not None:
        query = query.where(Product.cooperative_id == cooperative_id)
    return session.scalars(query).all()


def products_by_gtin(*, session: Session, gtins: Iterable[str]) -> dict[str, Product]:
    """The registered products among these GTIN-14s."""
    wanted = set(gtins)
    if not wanted:
        return {}
    rows = session.scalars(select(Product).where(Product.gtin.in_(wanted)))
    return {product.gtin: product for product in rows}


def products_by_id(*, session: Session, ids: Iterable[int]) -> dict[int, Product]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(wanted)))}


# --- lots and units -----------------------------------------------------------------------------


def lots_by_key(
    *, session: Session, keys: Iterable[tuple[str, str]], for_update: bool = False
) -> dict[tuple[str, str], Lot]:
    """Lots by (GTIN-14, lot), locked for the transaction when they will be changed."""
    found: dict[tuple[str, str], Lot] = {}
    for gtin, lots in _by_gtin(keys):
        query = select(Lot).where(Lot.gtin == gtin, Lot.lot.in_(lots)).order_by(Lot.id)
        if for_update:
            query = query.with_for_update()
        found.update({(lot.gtin, lot.lot): lot for lot in session.scalars(query)})
    return found


def _by_gtin(keys: Iterable[tuple[str, str]]) -> Iterable[tuple[str, list[str]]]:
    """(GTIN, lots or serials) in chunks within every backend's parameter limit.

    One GTIN and an IN list is what both backends answer from the (gtin, lot) index; SQLite
    answers a row-value IN ``(gtin, lot) IN (VALUES ...)`` by walking the whole table.
    """
    grouped: dict[str, set[str]] = {}
    for gtin, value in keys:
        grouped.setdefault(gtin, set()).add(value)
    for gtin in sorted(grouped):
        values = sorted(grouped[gtin])
        for start in range(0, len(values), 900):
            yield gtin, values[start : start + 900]


def lots_by_id(*, session: Session, ids: Iterable[int], for_update: bool = False) -> dict[int, Lot]:
    wanted = sorted(set(ids))
    found: dict[int, Lot] = {}
    for start in range(0, len(wanted), 900):
        query = select(Lot).where(Lot.id.in_(wanted[start : start + 900])).order_by(Lot.id)
        if for_update:
            query = query.with_for_update()
        found.update({lot.id: lot for lot in session.scalars(query)})
    return found


def lots_of_cooperative(
    *, session: Session, cooperative_id: int, limit: int = 200
) -> Sequence[Lot]:
    """A cooperative's lots that exist (not declared erroneous), newest first."""
    query = (
        select(Lot)
        .where(Lot.cooperative_id == cooperative_id, Lot.produced > QUANTITY_EPSILON)
        .order_by(Lot.produced_at.desc(), Lot.id.desc())
        .limit(limit)
    )
    return session.scalars(query).all()


def insert_lots(
    *, session: Session, rows: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, str], int]:
    """Insert new lot rows (every column given) in one executemany; their ids by (GTIN, lot)."""
    if not rows:
        return {}
    insert_rows(session.connection(), Lot, rows)
    found: dict[tuple[str, str], int] = {}
    for gtin, lots in _by_gtin((row["gtin"], row["lot"]) for row in rows):
        query = select(Lot.lot, Lot.id).where(Lot.gtin == gtin, Lot.lot.in_(lots))
        found.update({(gtin, lot): lot_id for lot, lot_id in session.execute(query)})
    return found


def get_lot(*, session: Session, gtin: str, lot: str) -> Lot:
    """A lot by GTIN and lot number, or NotFound."""
    gtin14 = normalise_gtin(gtin)
    row = session.scalar(select(Lot).where(Lot.gtin == gtin14, Lot.lot == lot))
    if row is None:
        raise NotFound(f"no lot {lot!r} of GTIN {gtin14}")
    return row


def is_live(lot: Lot) -> bool:
    """Whether a lot exists now: something produced it that was not declared erroneous."""
    return lot.produced > QUANTITY_EPSILON


def remaining(lot: Lot) -> float:
    """What is left of a lot, never below zero."""
    return max(0.0, lot.produced - lot.consumed)


def units_by_key(
    *, session: Session, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Unit]:
    """Serialised units by (GTIN-14, serial)."""
    found: dict[tuple[str, str], Unit] = {}
    for gtin, serials in _by_gtin(keys):
        query = select(Unit).where(Unit.gtin == gtin, Unit.serial.in_(serials))
        found.update({(unit.gtin, unit.serial): unit for unit in session.scalars(query)})
    return found


def get_unit(*, session: Session, gtin: str, serial: str) -> Unit:
    """A serialised unit by GTIN and serial (AI 21), or NotFound."""
    gtin14 = normalise_gtin(gtin)
    unit = session.scalar(select(Unit).where(Unit.gtin == gtin14, Unit.serial == serial))
    if unit is None:
        raise NotFound(f"no serialised unit {serial!r} of GTIN {gtin14}")
    return unit


def count_units(*, session: Session, lot_id: int) -> int:
    return int(session.scalar(select(func.count()).where(Unit.lot_id == lot_id)) or 0)


# --- 承诺达标合格证 ------------------------------------------------------------------------------

BASIS: Final[dict[str, str]] = {
    "commissioned_testing": "委托检测",
    "self_testing": "自我检测",
    "internal_quality_control": "内部质量控制",
    "self_commitment": "自我承诺",
}
COMMITMENTS: Final[dict[str, str]] = {
    "no_banned_pesticides_or_veterinary_drugs": "不使用禁用农药兽药",
    "no_suspended_veterinary_drugs_or_illegal_additives": "不使用停用兽药和非法添加物",
    "residues_within_limits": "常规农药兽药残留不超标",
}


def issue_certificate(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    gtin: str,
    lot: str,
    contact: str,
    basis: Sequence[str],
    origin: str,
    issued_on: dt.date,
    quantity: float | None = None,
    issuer: str | None = None,
) -> Certificate:
    """Issue a 承诺达标合格证 for (part of) a lot, on the ledger in the lot's chain."""
    row = get_lot(session=session, gtin=gtin, lot=lot)
    actor.require_cooperative(row.cooperative_id)
    if not is_live(row):
        raise Conflict(f"lot {lot} of {row.gtin} was declared erroneous; it has nothing to certify")
    product = session.get_one(Product, row.product_id)
    amount = _certified_amount(row, product, basis, quantity)
    contact = contact.strip()
    if not contact:
        raise Invalid("contact (a phone number of the issuer) must not be empty", field="contact")
    if not origin.strip():
        raise Invalid("origin must not be empty", field="origin")
    cooperative = regions.get_cooperative(session=session, cooperative_id=row.cooperative_id)
    issued_by = (issuer or cooperative.name).strip()
    same_day = session.scalar(
        select(func.count())
        .select_from(Certificate)
        .where(Certificate.cooperative_id == row.cooperative_id, Certificate.issued_on == issued_on)
    )
    number = f"{cooperative.uscc[-8:-1]}-{issued_on:%Y%m%d}-{(same_day or 0) + 1:04d}"
    salt = secrets.token_hex(16)  # the public entry records the contact only salted and hashed
    data = {
        "number": number,
        "gtin": row.gtin,
        "lot": row.lot,
        "product": product.name,
        "quantity": amount,
        "unit": product.unit,
        "origin": origin.strip(),
        "issuedOn": issued_on.isoformat(),
        "issuer": issued_by,
        "contactCommitment": recorded.contact_commitment(salt, contact),
        "basis": sorted(set(basis)),
        "commitments": list(COMMITMENTS),
    }
    entry = ledger.append(
        session,
        kind="trace.certificate.issued",
        data=data,
        chain_key=f"lot:{row.gtin}/{row.lot}",
    )
    certificate = Certificate(
        number=number,
        lot_id=row.id,
        product_name=product.name,
        quantity=amount,
        unit=product.unit,
        origin=origin.strip(),
        issued_on=issued_on,
        issuer=issued_by,
        contact=contact,
        contact_salt=salt,
        basis=json.dumps(sorted(set(basis))),
        commitments=json.dumps(list(COMMITMENTS)),
        cooperative_id=row.cooperative_id,
        ledger_seq=entry.seq,
    )
    session.add(certificate)
    session.flush()
    return certificate


def _certified_amount(
    row: Lot, product: Product, basis: Sequence[str], quantity: float | None
) -> float:
    """How much a certificate covers (the rest of the lot unless given), its basis checked."""
    unknown = [code for code in basis if code not in BASIS]
    if unknown or not basis:
        raise Invalid(
            f"basis must name one or more of {', '.join(BASIS)}; got {list(basis)}", field="basis"
        )
    amount = remaining(row) if quantity is None else quantity
    if amount <= 0:
        raise Invalid("quantity must be positive (the lot has nothing left)", field="quantity")
    if amount > row.produced * (1 + QUANTITY_EPSILON):
        raise Invalid(
            f"quantity {amount:g} {product.unit} is more than lot {row.lot} ever held "
            f"({row.produced:g} {product.unit})",
            field="quantity",
        )
    return amount


def certificate_uri(base_url: str, number: str) -> str:
    """What a certificate's QR code carries: the address that shows the certificate."""
    return f"{base_url.rstrip('/')}/api/v1/certificates/{number}"


def get_certificate(*, session: Session, number: str) -> Certificate:
    certificate = session.scalar(select(Certificate).where(Certificate.number == number))
    if certificate is None:
        raise NotFound(f"no 承诺达标合格证 numbered {number}")
    return certificate


def units_by_short_code(*, session: Session, code: str) -> list[tuple[Unit, Lot, Product]]:
    """The serialised items whose label carries this 查询码 (``XXXX-XXXX``), with their lots
    and products; rarely more than one (40 bits of a hash)."""
    query = (
        select(Unit, Lot, Product)
        .join(Lot, Lot.id == Unit.lot_id)
        .join(Product, Product.id == Lot.product_id)
        .where(Unit.short_code == code)
        .order_by(Unit.id)
        .limit(20)
    )
    return [(unit, lot, product) for unit, lot, product in session.execute(query)]


def certificates_of_lot(*, session: Session, lot_id: int) -> Sequence[Certificate]:
    """Certificates issued for a lot, newest first."""
    return session.scalars(
        select(Certificate).where(Certificate.lot_id == lot_id).order_by(Certificate.id.desc())
    ).all()
