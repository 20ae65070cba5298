"""What the consumer page of a lot or a bottle shows, gathered from the chain, the map and the net.

``consumer_view`` builds a :class:`ConsumerView` — plain data, no HTML — from the backward
trace of the lot (``trace.tracing``) read once with its entries (``web.history.Chain``): the
product, the lots that made it and their sizes, the origin (``web.origin``: parcels with their
chains of entries, places, map), the corrected history (``web.history``), the growing
conditions drawn from the seals of each parcel's readings (``web.conditions``) and the lot's
承诺达标合格证. The template turns it into words of the reader's language.

Every fact shown is paired with the ledger entry that records it (``web.facts``): the product
and producer with the product's registration, the lot's size with the last event that changed
it, each parcel's code, shape, area, land use and crop with its chain, the grower with the
harvest, each step of the history with its event, each field of a certificate with its issue.
Values the rows hold are claimed against their entries, so the reader's browser marks any that
differ; what only entries hold (an event's details, its time) is read from them. A fact the
ledger did not yet carry when it was recorded is marked as such, never as verified.

What is shown is the corrected history: an event declared erroneous (EPCIS errorDeclaration)
is left out of the timeline, the corrective event is in it, and the correction itself is
listed with its reason and date. Nothing personal is shown: households by masked name only, no
phone numbers (a certificate's contact is left out), no identity numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.jsonpointer import pointer
from digital_village.ledger import log as ledger_log
from digital_village.ledger import reads
from digital_village.regions import service as regions
from digital_village.trace import lineage, products, recorded, tracing
from digital_village.trace.models import Certificate, Lot, Product
from digital_village.web import conditions, facts, history, origin
from digital_village.web.conditions import Conditions
from digital_village.web.facts import UNBOUND, Fact
from digital_village.web.history import Correction, Step
from digital_village.web.origin import ParcelInfo


@dataclass(frozen=True)
class CertificateInfo:
    number: str
    product: str
    quantity: str
    origin: str
    issued_on: dt.date
    issuer: str
    basis: tuple[str, ...]  # codes (labels are messages)
    commitments: tuple[str, ...]
    ledger_seq: int
    # Each field shown (number, product, quantity, origin, issuer, issuedOn, basis,
    # commitments) and the issue entry's record of it.
    facts: Mapping[str, Fact] = field(default_factory=dict)


@dataclass(frozen=True)
class Flag:
    """A doubt to show: a message key and the values its text needs."""

    key: str
    params: Mapping[str, Any]
    severity: str = "warn"


@dataclass(frozen=True)
class ChainLot:
    """One lot of the chain that made the item: its product and size."""

    product: str
    lot: str
    quantity: str
    product_fact: Fact = UNBOUND
    lot_fact: Fact = UNBOUND


@dataclass
class ConsumerView:
    """Everything the consumer page of one lot or serialised item shows."""

    level: str  # "lot" or "serial"
    uri: str
    gtin: str
    product: str
    lot: str
    serial: str | None
    unit_status: str | None
    cooperative: str
    quantity: str
    produced_at: dt.datetime
    # The product's registration: its name, GTIN and the producer's 统一社会信用代码.
    product_fact: Fact = UNBOUND
    gtin_fact: Fact = UNBOUND
    producer_fact: Fact = UNBOUND
    # The lot's size, in the last event that changed it.
    quantity_fact: Fact = UNBOUND
    # A serialised item's lot, in the event that commissioned it.
    serial_fact: Fact = UNBOUND
    harvests: list[tuple[dt.date, Fact]] = field(default_factory=list)
    places: list[tuple[str, Fact]] = field(default_factory=list)
    parcels: list[ParcelInfo] = field(default_factory=list)
    total_area_mu: float = 0.0
    map_svg: str = ""
    timeline: list[Step] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    conditions: list[Conditions] = field(default_factory=list)
    certificates: list[CertificateInfo] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    chain: list[ChainLot] = field(default_factory=list)


def latest_tree_size(session: Session) -> int:
    """The size of the ledger's latest signed checkpoint (0 before the first one)."""
    checkpoint = ledger_log.latest_checkpoint(session)
    return 0 if checkpoint is None else int(checkpoint.size)


def lots_of_product(*, session: Session, product: Product, limit: int = 20) -> Sequence[Lot]:
    """The product's most recently produced lots that exist (not declared erroneous)."""
    query = (
        select(Lot)
        .where(Lot.product_id == product.id, Lot.produced > products.QUANTITY_EPSILON)
        .order_by(Lot.produced_at.desc(), Lot.id.desc())
        .limit(limit)
    )
    return session.scalars(query).all()


@dataclass(frozen=True)
class ProductLot:
    lot: str
    produced_at: dt.datetime  # China time
    fact: Fact  # when it was made, in the entry of the event that made it


@dataclass(frozen=True)
class ProductView:
    """A product's page (a GTIN without a lot): what it is, who makes it, its recent lots."""

    product: Product
    cooperative: str
    lots: list[ProductLot]
    name_fact: Fact
    gtin_fact: Fact
    category_fact: Fact
    producer_fact: Fact


def product_view(*, session: Session, product: Product) -> ProductView:
    """The product page's facts, each claimed against the entry that records it."""
    cooperative = regions.get_cooperative(session=session, cooperative_id=product.cooperative_id)
    rows = lots_of_product(session=session, product=product)
    made = {
        lot_id: seqs[1]
        for lot_id, seqs in lineage.lot_entries(
            session=session, lot_ids=[row.id for row in rows]
        ).items()
    }
    entries = reads.entries_by_seq(session, [seq for seq in made.values() if seq is not None])
    lots = []
    for row in rows:
        seq = made.get(row.id)
        found = entries.get(seq) if seq is not None else None
        if seq is None:
            fact = UNBOUND
        elif found is not None and not recorded.records_effects(reads.data_of(found[1])):
            fact = facts.unrecorded(seq)
        else:
            path = pointer("data", "effects", "lots", recorded.lot_key(row.gtin, row.lot))
            fact = facts.of(seq, {f"{path}/producedAt": recorded.utc_text(row.produced_at)})
        lots.append(ProductLot(row.lot, history.local(row.produced_at), fact))
    return ProductView(
        product=product,
        cooperative=cooperative.name,
        lots=lots,
        name_fact=_product_fact(product, recorded.PRODUCT_NAME[0], product.name),
        gtin_fact=_product_fact(product, recorded.PRODUCT_GTIN[0], product.gtin),
        category_fact=_product_fact(product, "/data/category", product.category),
        producer_fact=_product_fact(product, recorded.PRODUCT_COOPERATIVE[0], cooperative.uscc),
    )


def consumer_view(
    *,
    session: Session,
    gtin: str,
    lot: str,
    base_url: str,
    language: str,
    pieces: str,
) -> ConsumerView:
    """The page of a lot; NotFound when unknown. A serialised item's page is its lot's page
    with the item's serial and status (:func:`for_unit`): its history is the lot's."""
    trace = tracing.trace_lot(
        session=session, gtin=gtin, lot=lot, direction="backward", base_url=base_url
    )
    chain = history.read_chain(session, trace)
    nodes = chain.nodes
    lot_node = nodes[trace["root"]]
    product = products.get_product(session=session, gtin=lot_node["gtin"])
    cooperative = regions.get_cooperative(session=session, cooperative_id=product.cooperative_id)
    lot_row = chain.lots[(lot_node["gtin"], lot_node["lot"])]
    view = ConsumerView(
        level="lot",
        uri=lot_node["uri"],
        gtin=lot_node["gtin"],
        product=product.name,
        lot=lot_node["lot"],
        serial=None,
        unit_status=None,
        cooperative=cooperative.name,
        quantity=history.quantity_text(lot_row.produced, product.unit, pieces=pieces),
        produced_at=history.local(lot_row.produced_at),
        product_fact=_product_fact(product, recorded.PRODUCT_NAME[0], product.name),
        gtin_fact=_product_fact(product, recorded.PRODUCT_GTIN[0], product.gtin),
        producer_fact=_product_fact(product, recorded.PRODUCT_COOPERATIVE[0], cooperative.uscc),
        quantity_fact=chain.lot_fact(lot_row),
    )
    lot_names = {
        (node["gtin"], node["lot"]): node["product"]
        for node in nodes.values()
        if node["type"] == "lot"
    }
    _chain_lots(session, view, chain, pieces)
    found = origin.origin(session, chain)
    view.harvests, view.places, view.parcels = found.harvests, found.places, found.parcels
    view.total_area_mu, view.map_svg = found.total_area_mu, found.map_svg
    harvested = {dkbm: h.when for dkbm, h in origin.harvest_times(chain).items()}
    view.timeline, view.corrections = history.timeline(chain, lot_names, harvested)
    view.conditions = conditions.conditions(
        session,
        timeline=view.timeline,
        labels={p.dkbm: p.label for p in view.parcels},
        harvests=harvested,
        language=language,
    )
    _certificates(session, view, chain, pieces)
    view.flags = [_trace_flag(flag) for flag in trace["flags"]]
    return view


def _product_fact(product: Product, path: str, value: Any) -> Fact:
    return facts.of(product.ledger_seq, {path: value})


def _chain_lots(session: Session, view: ConsumerView, chain: history.Chain, pieces: str) -> None:
    """The lots that made the item, oldest first, with their products and sizes."""
    lots = sorted(chain.lots.values(), key=lambda lot: (lot.produced_at, lot.id))
    found = products.products_by_id(session=session, ids={lot.product_id for lot in lots})
    for lot in lots:
        product = found[lot.product_id]
        view.chain.append(
            ChainLot(
                product=product.name,
                lot=lot.lot,
                quantity=history.quantity_text(lot.produced, product.unit, pieces=pieces),
                product_fact=_product_fact(product, recorded.PRODUCT_NAME[0], product.name),
                lot_fact=chain.lot_fact(lot),
            )
        )


def for_unit(
    view: ConsumerView, *, serial: str, status: str, uri: str, serial_fact: Fact = UNBOUND
) -> ConsumerView:
    """The page of one serialised item of the lot: the lot's view with its serial and status
    (an item withdrawn, voided or used up is flagged first); ``serial_fact`` (:func:`unit_fact`)
    claims the item's lot against the event that commissioned it."""
    flags = list(view.flags)
    if status in ("decommissioned", "voided", "consumed"):
        flags.insert(0, Flag(f"flag_unit_{status}", {}))
    return dataclasses.replace(
        view,
        level="serial",
        serial=serial,
        unit_status=status,
        uri=uri,
        flags=flags,
        serial_fact=serial_fact,
    )


def unit_fact(*, session: Session, seq: int | None, gtin: str, serial: str, lot: str) -> Fact:
    """A serialised item's lot, claimed against the entry of the event that commissioned it."""
    if seq is None:
        return UNBOUND
    found = reads.entries_by_seq(session, [seq]).get(seq)
    if found is not None and not recorded.records_effects(reads.data_of(found[1])):
        return facts.unrecorded(seq)
    return facts.of(seq, {recorded.unit_lot(gtin, serial): recorded.lot_key(gtin, lot)})


def _certificates(session: Session, view: ConsumerView, chain: history.Chain, pieces: str) -> None:
    seen: set[str] = set()
    for row in sorted(chain.lots.values(), key=lambda lot: lot.id):
        for certificate in products.certificates_of_lot(session=session, lot_id=row.id):
            if certificate.number in seen:
                continue
            seen.add(certificate.number)
            view.certificates.append(certificate_info(certificate, pieces=pieces))


def certificate_info(certificate: Certificate, *, pieces: str) -> CertificateInfo:
    """A certificate as a page shows it, each field claimed against its issue entry."""
    shown = recorded.CERTIFICATE_SHOWN

    def fact(*paths: str) -> Fact:
        claims: dict[str, Any] = {}
        for path in paths:
            try:
                claims[path] = shown[path](certificate)
            except ValueError:
                claims[path] = None  # the stored value cannot be read: the fact fails
        return facts.of(certificate.ledger_seq, claims)

    return CertificateInfo(
        number=certificate.number,
        product=certificate.product_name,
        quantity=history.quantity_text(certificate.quantity, certificate.unit, pieces=pieces),
        origin=certificate.origin,
        issued_on=certificate.issued_on,
        issuer=certificate.issuer,
        basis=tuple(_codes(certificate.basis)),
        commitments=tuple(_codes(certificate.commitments)),
        ledger_seq=certificate.ledger_seq,
        facts={
            "number": fact("/data/number"),
            "product": fact("/data/product"),
            "quantity": fact("/data/quantity", "/data/unit"),
            "origin": fact("/data/origin"),
            "issuer": fact("/data/issuer"),
            "issuedOn": fact("/data/issuedOn"),
            "basis": fact("/data/basis"),
            "commitments": fact("/data/commitments"),
        },
    )


def _codes(text: str) -> list[str]:
    """A JSON list of codes as stored; an unreadable one shows as nothing (its fact fails)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    return [str(code) for code in value] if isinstance(value, list) else []


def _trace_flag(flag: Mapping[str, Any]) -> Flag:
    kind = str(flag.get("kind"))
    expected = flag.get("expected") or [0, 0]
    value = float(flag.get("value", 0.0))
    shown = {
        "yield": f"{value:.0f}",
        "mass_balance": f"{value:.3f}",
        "repeat_harvest": f"{value:.0f}",
    }.get(kind, f"{value:.1f}")
    params = {
        "value": shown,
        "low": history.number_text(float(expected[0])),
        "high": history.number_text(float(expected[1])),
        "message": str(flag.get("message", "")),
    }
    if kind in ("yield", "mass_balance", "pre_harvest_interval", "repeat_harvest"):
        return Flag(f"flag_{kind}", params)
    return Flag("flag_other", params)
