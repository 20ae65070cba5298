"""Changing a registered product's recorded facts: name, category, net content, unit.

A product's facts are on the ledger (the consumer page shows them as verified), so a change is
an entry too: ``trace.product.changed`` on the product's chain ``product:<GTIN-14>``, holding
all of the product's facts as they stand after it (the shape of its registration), so the
newest entry of the chain alone states the product. The row is updated and its ``ledger_seq``
points at that newest entry; the audit compares the row with it (``trace/audit.py``).

A change that changes nothing appends nothing and answers the product as it is (a repeated
PATCH is harmless). The unit a product is counted in may change only while it has no lots: the
quantities of its lots, and the events that made and used them, are in that unit.
The GTIN and the owning cooperative never change.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.errors import Conflict, Invalid
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from digital_village.trace import products, recorded
from digital_village.trace.models import Lot, Product


def change_product(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    gtin: str,
    name: str | None = None,
    category: str | None = None,
    unit: str | None = None,
    net_quantity: float | None = None,
    net_unit: str | None = None,
    clear_net_content: bool = False,
) -> Product:
    """Change what is given (None: keep; ``clear_net_content``: no net content any more),
    checked by the rules of a registration, and record the product's new facts on the
    ledger; the product unchanged, with no new entry, when nothing differs."""
    product = products.get_product(session=session, gtin=gtin)
    actor.require_cooperative(product.cooperative_id)
    new_name = product.name if name is None else name.strip()
    new_category = product.category if category is None else category.strip()
    new_unit = product.unit if unit is None else unit.strip().upper()
    if clear_net_content and (net_quantity is not None or net_unit is not None):
        raise Invalid("give a net content or ask to remove it, not both", field="net_quantity")
    if clear_net_content:
        new_net: tuple[float | None, str | None] = (None, None)
    elif net_quantity is None and net_unit is None:
        new_net = (product.net_quantity, product.net_unit)
    else:
        new_net = (net_quantity, net_unit.strip().upper() if net_unit else net_unit)
    unit_changes = new_unit != product.unit
    products.check_facts(
        name=new_name,
        category=new_category,
        unit=new_unit,
        net_quantity=new_net[0],
        net_unit=new_net[1],
        net_field="unit" if unit_changes else "net_quantity",
    )
    if unit_changes and _has_lots(session, product):
        raise Conflict(
            f"product {product.gtin} has lots counted in {product.unit}: its unit cannot become "
            f"{new_unit} (the quantities of its lots and events are in {product.unit})",
            field="unit",
        )
    facts = (new_name, new_category, new_unit, *new_net)
    if facts == (product.name, product.category, product.unit, *_net(product)):
        return product
    cooperative = regions.get_cooperative(session=session, cooperative_id=product.cooperative_id)
    entry = ledger.append(
        session,
        kind=recorded.PRODUCT_CHANGED_KIND,
        data=recorded.product_data(
            gtin=product.gtin,
            name=new_name,
            category=new_category,
            unit=new_unit,
            net_quantity=new_net[0],
            net_unit=new_net[1],
            uscc=cooperative.uscc,
        ),
        chain_key=recorded.product_chain(product.gtin),
    )
    product.name, product.category, product.unit = new_name, new_category, new_unit
    product.net_quantity, product.net_unit = new_net
    product.ledger_seq = entry.seq
    session.flush()
    return product


def _net(product: Product) -> tuple[float | None, str | None]:
    return (product.net_quantity, product.net_unit)


def _has_lots(session: Session, product: Product) -> bool:
    return session.scalar(select(Lot.id).where(Lot.product_id == product.id).limit(1)) is not None
