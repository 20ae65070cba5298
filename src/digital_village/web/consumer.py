"""What the consumer page of a lot or a bottle shows, gathered from the chain, the map and the net.

``consumer_view`` builds a :class:`ConsumerView` — plain data, no HTML — from the services the
API uses: the backward trace of the lot (``trace.tracing``), the events as recorded in their
ledger entries, the parcels with their chains of entries (``parcels.recorded``) and region names,
the daily soil readings of each parcel over the season (``iot.queries``) and the lot's
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
import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.errors import DomainError
from digital_village.iot import metrics, seal
from digital_village.iot import queries as readings
from digital_village.jsonpointer import pointer
from digital_village.ledger import log as ledger_log
from digital_village.ledger import reads
from digital_village.parcels import geometry, landuse
from digital_village.parcels import recorded as parcel_records
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from digital_village.trace import lineage, products, recorded, tracing
from digital_village.trace.identifiers import IdentifierError, parse_gtin_identifier
from digital_village.trace.models import Certificate, Lot, Product
from digital_village.trace.vocab import farm_step
from digital_village.web import drawing, facts
from digital_village.web.facts import UNBOUND, Fact

CHINA: Final = dt.timezone(dt.timedelta(hours=8))
UNIT_SYMBOLS: Final[Mapping[str, str]] = {
    "KGM": "kg",
    "TNE": "t",
    "GRM": "g",
    "LTR": "L",
    "MLT": "mL",
    "MTQ": "m³",
    "MMT": "mm",
    "CEL": "°C",
    "P1": "%",
    "HAR": "ha",
    "MTK": "m²",
}
COUNTED: Final = frozenset({"H87", "EA"})
# How far before the harvest the growing conditions are charted when no sowing is recorded.
DEFAULT_SEASON_DAYS: Final = 220
MAX_CHARTED_PARCELS: Final = 4
WAITED: Final = "detail_waited"
CROP_BEFORE_HARVEST: Final = dt.timedelta(days=45)
# The same work on several parcels within this span is one line of the timeline.
MERGE_WITHIN: Final = dt.timedelta(days=10)
CHART_COLOURS: Final = {"soil_moisture": "#1e88e5", "soil_temperature": "#e65100"}
MONTHS_EN: Final = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
]


def _number(value: float) -> str:
    """A quantity as people write it: 1940.4, 5, 0.38 (no float noise, no needless zeros)."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text


def quantity_text(value: float, unit: str, *, pieces: str) -> str:
    """``1,940.4 kg``, ``6 瓶``-style (``pieces`` is the word for counted items)."""
    if unit in COUNTED:
        return f"{_number(value)} {pieces}"
    return f"{_number(value)} {UNIT_SYMBOLS.get(unit, unit)}"


def _local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(CHINA)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Detail:
    """One line of a timeline step: a message key for its label and a ready value."""

    label: str
    value: str
    warn: bool = False
    translate: bool = False  # the value is itself a message key


@dataclass(frozen=True)
class Step:
    """One recorded event, in the reader's terms."""

    when: dt.datetime  # China time
    step: str  # message key, e.g. step_planting
    details: tuple[Detail, ...]
    parcels: tuple[str, ...]  # short parcel labels
    ledger_seqs: tuple[int, ...]
    corrective: bool = False  # it replaced an event declared erroneous
    until: dt.datetime | None = None  # the last day, when the same work spanned several days


@dataclass(frozen=True)
class Correction:
    """An event declared erroneous: what it was, when it was declared and why."""

    step: str
    when: dt.datetime
    declared: dt.datetime
    reason: str  # message key
    ledger_seq: int


@dataclass(frozen=True)
class ParcelInfo:
    dkbm: str
    label: str
    township: str
    village: str
    group: str
    area_mu: float
    land_use: str
    land_use_en: str
    crop: str | None
    crop_en: str | None
    holder: str | None  # masked name
    operator: str | None  # cooperative name
    # The registration entry: code, 发包方, shape (SHA-256 of the stored geometry); and the
    # entries of the area, land use, crop and grower shown.
    code_fact: Fact = UNBOUND
    area_fact: Fact = UNBOUND
    land_use_fact: Fact = UNBOUND
    crop_fact: Fact = UNBOUND
    holder_fact: Fact = UNBOUND


@dataclass(frozen=True)
class Chart:
    metric: str
    unit: str
    svg: str


@dataclass(frozen=True)
class Conditions:
    dkbm: str
    label: str
    first: dt.date
    last: dt.date
    sealed_days: int
    charts: tuple[Chart, ...]
    fact: Fact = UNBOUND  # the seal entries the charts are drawn from


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


# --- building ------------------------------------------------------------------------------------


class _Regions:
    """Region names by code, looked up once per page."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.names: dict[str, str] = {}

    def name(self, code: str | None) -> str:
        if not code:
            return ""
        if code not in self.names:
            try:
                self.names[code] = regions.get_region(session=self.session, code=code).name
            except DomainError:
                self.names[code] = code
        return self.names[code]


def step_key(biz_step: str | None) -> str:
    """The message key of a bizStep: ``step_planting``, ``step_commissioning``, ..."""
    if biz_step is None:
        return "step_other"
    known = farm_step(biz_step)
    if known is not None:
        return f"step_{known.key}"
    word = biz_step.rsplit("/", 1)[-1].removeprefix("BizStep-")
    return f"step_{word}"


def _amount(value: object, *, pieces: str = "") -> str | None:
    """A ``{"dv:quantity": 20, "dv:uom": "GRM"}`` extension as text."""
    if isinstance(value, Mapping):
        quantity = value.get("dv:quantity")
        unit = value.get("dv:uom")
        if isinstance(quantity, int | float) and isinstance(unit, str):
            return quantity_text(float(quantity), unit, pieces=pieces)
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return str(value)
    return None


def _lot_key(uri: str) -> tuple[str, str] | None:
    try:
        item = parse_gtin_identifier(uri)
    except IdentifierError:
        return None
    if item is None or item.lot is None:
        return None
    return item.gtin, item.lot


def _sum_quantities(
    elements: Iterable[Mapping[str, Any]], names: Mapping[tuple[str, str], str]
) -> list[tuple[str, float, str]]:
    """(product name, total, unit) of a quantity list, in order of first appearance."""
    totals: dict[tuple[str, str], float] = {}
    for element in elements:
        key = _lot_key(str(element.get("epcClass", "")))
        quantity = element.get("quantity")
        if key is None or not isinstance(quantity, int | float):
            continue
        name = names.get(key, key[1])
        unit = str(element.get("uom", ""))
        totals[(name, unit)] = totals.get((name, unit), 0.0) + float(quantity)
    return [(name, total, unit) for (name, unit), total in totals.items()]


def describe(
    body: Mapping[str, Any],
    step: str,
    names: Mapping[tuple[str, str], str],
    harvest_after: dt.datetime | None,
) -> tuple[Detail, ...]:
    """The lines a reader sees for one event's EPCIS JSON (``names``: lot → product name)."""
    found: list[Detail] = []

    def add(label: str, value: object, *, warn: bool = False, translate: bool = False) -> None:
        if value is not None and value != "":
            found.append(Detail(label, str(value), warn, translate))

    add("detail_crop", body.get("dv:crop"))
    add("detail_variety", body.get("dv:variety"))
    add("detail_fertilizer", body.get("dv:fertilizer"))
    add("detail_amount", _amount(body.get("dv:amount")))
    add("detail_water", _amount(body.get("dv:water")))
    if step == "step_spraying":
        add("detail_pesticide", body.get("dv:pesticideName"))
        add("detail_dose", _amount(body.get("dv:dose")))
        days = body.get("dv:preHarvestIntervalDays")
        if isinstance(days, int):
            add("detail_phi", days)
            if harvest_after is not None:
                sprayed = _parse_time(str(body["eventTime"]))
                waited = (harvest_after - sprayed).total_seconds() / 86400
                mark = "✗" if waited < days else "✓"
                add(WAITED, f"{waited:.0f} {mark}", warn=waited < days)
    if step == "step_harvesting":
        for name, total, unit in _sum_quantities(body.get("quantityList") or [], names):
            add("detail_harvested", f"{name} {quantity_text(total, unit, pieces='')}")
    inputs = _sum_quantities(body.get("inputQuantityList") or [], names)
    outputs = _sum_quantities(body.get("outputQuantityList") or [], names)
    for name, total, unit in inputs:
        add("detail_input", f"{name} {quantity_text(total, unit, pieces='')}")
    for name, total, unit in outputs:
        add("detail_output", f"{name} {quantity_text(total, unit, pieces='')}")
    items = body.get("outputEPCList") or []
    if items:
        add("detail_items", len(items))
    children = body.get("childEPCs") or []
    if children:
        add("detail_items", len(children))
    if step == "step_inspecting":
        add("detail_method", body.get("dv:inspection"))
        disposition = body.get("disposition")
        if disposition in ("conformant", "non_conformant"):
            add(
                "detail_result",
                f"result_{disposition}",
                warn=disposition == "non_conformant",
                translate=True,
            )
        else:
            add("detail_result", body.get("dv:result"))
    add("detail_note", body.get("dv:note"))
    return tuple(found)


def _month_label(language: str) -> Any:
    if language == "en":
        return lambda day: MONTHS_EN[day.month - 1]
    return lambda day: f"{day.month}月"


def scale_label(metres: float) -> str:
    """The text of a map's scale bar."""
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


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
        lots.append(ProductLot(row.lot, _local(row.produced_at), fact))
    return ProductView(
        product=product,
        cooperative=cooperative.name,
        lots=lots,
        name_fact=_product_fact(product, recorded.PRODUCT_NAME[0], product.name),
        gtin_fact=_product_fact(product, recorded.PRODUCT_GTIN[0], product.gtin),
        category_fact=_product_fact(product, "/data/category", product.category),
        producer_fact=_product_fact(product, recorded.PRODUCT_COOPERATIVE[0], cooperative.uscc),
    )


@dataclass
class _Chain:
    """The trace graph of the lot and what the ledger records of it, read once per view."""

    nodes: dict[str, dict[str, Any]]
    edges: list[dict[str, Any]]
    entries: dict[int, dict[str, Any]]  # data of the events' and lots' entries, by index
    lots: dict[tuple[str, str], Lot]
    lot_changes: dict[int, tuple[int, int | None]]  # lot id → entries (trace.lineage)

    def event_data(self, node: Mapping[str, Any]) -> dict[str, Any] | None:
        """What an event node's entry records of the event (None: no readable entry)."""
        event = self.entries.get(node["ledger_seq"], {}).get("event")
        return event if isinstance(event, dict) else None

    def event_time(self, node: Mapping[str, Any]) -> dt.datetime:
        """When an event happened, as its entry records it (its row's time if unreadable)."""
        event = self.event_data(node)
        text = event.get("eventTime") if event else None
        try:
            return _parse_time(str(text)) if text else _parse_time(node["event_time"])
        except ValueError:
            return _parse_time(node["event_time"])

    def lot_fact(self, lot: Lot) -> Fact:
        """The lot's size, in the entry of the last event that changed it."""
        change = self.lot_changes.get(lot.id)
        if change is None:
            return UNBOUND
        seq = change[0]
        data = self.entries.get(seq)
        if data is not None and not recorded.records_effects(data):
            return facts.unrecorded(seq)
        return facts.of(seq, {recorded.lot_produced(lot.gtin, lot.lot): lot.produced})


def _read_chain(session: Session, trace: Mapping[str, Any]) -> _Chain:
    nodes: dict[str, dict[str, Any]] = {node["id"]: node for node in trace["nodes"]}
    lot_keys = [(n["gtin"], n["lot"]) for n in nodes.values() if n["type"] == "lot"]
    lots = products.lots_by_key(session=session, keys=lot_keys)
    changes = lineage.lot_entries(session=session, lot_ids=[lot.id for lot in lots.values()])
    seqs = {n["ledger_seq"] for n in nodes.values() if n["type"] == "event"}
    seqs |= {last for last, _ in changes.values()}
    entries = {
        seq: reads.data_of(body) for seq, (_, body) in reads.entries_by_seq(session, seqs).items()
    }
    return _Chain(nodes, trace["edges"], entries, lots, changes)


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
    chain = _read_chain(session, trace)
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
        quantity=quantity_text(lot_row.produced, product.unit, pieces=pieces),
        produced_at=_local(lot_row.produced_at),
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
    _origin(session, view, chain)
    harvest_by_parcel = _harvest_times(chain)
    _timeline(view, chain, lot_names, harvest_by_parcel)
    _conditions(session, view, {dkbm: h.when for dkbm, h in harvest_by_parcel.items()}, language)
    _certificates(session, view, chain, pieces)
    view.flags = [_trace_flag(flag) for flag in trace["flags"]]
    return view


def _product_fact(product: Product, path: str, value: Any) -> Fact:
    return facts.of(product.ledger_seq, {path: value})


def _chain_lots(session: Session, view: ConsumerView, chain: _Chain, pieces: str) -> None:
    """The lots that made the item, oldest first, with their products and sizes."""
    lots = sorted(chain.lots.values(), key=lambda lot: (lot.produced_at, lot.id))
    found = products.products_by_id(session=session, ids={lot.product_id for lot in lots})
    for lot in lots:
        product = found[lot.product_id]
        view.chain.append(
            ChainLot(
                product=product.name,
                lot=lot.lot,
                quantity=quantity_text(lot.produced, product.unit, pieces=pieces),
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


@dataclass(frozen=True)
class _Harvest:
    when: dt.datetime
    seq: int  # the harvest event's entry


def _harvest_times(chain: _Chain) -> dict[str, _Harvest]:
    """Parcel → its harvest (the latest, for this trace), as the harvest's entry records it."""
    found: dict[str, _Harvest] = {}
    for edge in chain.edges:
        if edge["type"] == "harvested_into" and edge.get("event") in chain.nodes:
            node = chain.nodes[edge["event"]]
            harvest = _Harvest(chain.event_time(node), node["ledger_seq"])
            if edge["from"] not in found or harvest.when > found[edge["from"]].when:
                found[edge["from"]] = harvest
    return found


def _holder_fact(chain: _Chain, harvest: _Harvest | None, dkbm: str, cbfbm: str | None) -> Fact:
    """The grower shown, as the harvest's entry records the parcel's holder."""
    if harvest is None or cbfbm is None:
        return UNBOUND
    data = chain.entries.get(harvest.seq)
    if data is not None and not recorded.records_effects(data):
        return facts.unrecorded(harvest.seq)
    return facts.of(harvest.seq, {pointer("data", "effects", "parcels", dkbm, "contractor"): cbfbm})


def _origin(session: Session, view: ConsumerView, chain: _Chain) -> None:
    names = _Regions(session)
    holders: dict[str, tuple[str, str]] = {}  # parcel → (cbfbm, masked name)
    operators: dict[str, str] = {}
    for edge in chain.edges:
        source = chain.nodes.get(edge["from"], {})
        if edge["type"] == "holds" and source.get("type") == "household":
            holders[edge["to"]] = (source["id"], source["name"])
        if edge["type"] == "operates" and source.get("type") == "cooperative":
            operators[edge["to"]] = source["name"]
    harvests = _harvest_times(chain)
    for day, seq in sorted({(_local(h.when).date(), h.seq) for h in harvests.values()}):
        if day not in (known for known, _ in view.harvests):
            view.harvests.append((day, facts.of(seq)))
    dkbms = sorted(n["id"] for n in chain.nodes.values() if n["type"] == "parcel")
    chains = reads.chain_entries(session, [parcel_records.chain_key(dkbm) for dkbm in dkbms])
    shapes: list[drawing.MapShape] = []
    for dkbm in dkbms:
        parcel = parcels.get_parcel(session=session, dkbm=dkbm)
        record = parcel_records.fold(
            dkbm,
            (
                (seq, kind, reads.data_of(body))
                for seq, kind, body in chains.get(parcel_records.chain_key(dkbm), [])
            ),
        )
        harvest = harvests.get(parcel.dkbm)
        crop = None
        growing = None
        if harvest is not None:
            # The crop of the season, asked well before the harvest: a harvest in May ends the
            # winter crop on a day the registry already counts as the summer season.
            growing = _local(harvest.when).date() - CROP_BEFORE_HARVEST
            crop = parcels.crops_on(session=session, parcel_ids=[parcel.id], on=growing).get(
                parcel.id
            )
        holder = holders.get(parcel.dkbm)
        label = parcel.dkbm[-5:]
        info = ParcelInfo(
            dkbm=parcel.dkbm,
            label=label,
            township=names.name(parcel.township_code),
            village=names.name(parcel.village_code),
            group=names.name(parcel.group_code),
            area_mu=parcel.area_mu,
            land_use=landuse.LAND_USE.get(parcel.land_use, parcel.land_use),
            land_use_en=landuse.LAND_USE_EN.get(parcel.land_use, parcel.land_use),
            crop=crop,
            crop_en=landuse.CROPS_EN.get(crop, crop) if crop else None,
            holder=holder[1] if holder else None,
            operator=operators.get(parcel.dkbm),
            **parcel_facts(parcel, record, crop=crop, on=growing),
            holder_fact=_holder_fact(chain, harvest, parcel.dkbm, holder[0] if holder else None),
        )
        view.parcels.append(info)
        place = f"{info.township}{info.village}"
        if place and place not in (known for known, _ in view.places):
            view.places.append(
                (place, facts.of(record.registered_seq, {"/data/fbfbm": parcel.fbfbm}))
            )
        shape = map_shape(parcel, label, epsg=parcel.epsg)
        if shape is not None:
            shapes.append(shape)
    view.total_area_mu = sum(p.area_mu for p in view.parcels)
    view.map_svg = drawing.parcel_map(shapes, scale_label=scale_label)


def map_shape(
    parcel: Any, label: str, *, epsg: int, highlighted: bool = True
) -> drawing.MapShape | None:
    """A parcel's outline for a map, in the Gauss-Krüger zone ``epsg``; None when its stored
    bytes are no geometry (edited: its code's fact fails, the page still shows)."""
    try:
        shape = geometry.to_gk(parcels.parcel_geometry(parcel), epsg)
    except (shapely.errors.GEOSException, ValueError, TypeError):
        return None
    return drawing.MapShape(label, shape, highlighted=highlighted)


def parcel_facts(
    parcel: Any, record: parcel_records.ParcelRecord, *, crop: str | None, on: dt.date | None
) -> dict[str, Fact]:
    """The facts of a parcel's code, shape, area, land use and crop (``crop`` as shown, for
    the season holding ``on``), each claimed against the entry of its chain that records it."""
    registered = record.registered_seq
    if registered is None:
        return {}
    found = {
        "code_fact": facts.of(
            registered,
            {
                "/data/dkbm": parcel.dkbm,
                "/data/fbfbm": parcel.fbfbm,
                "/data/geometry_sha256": hashlib.sha256(parcel.geometry_wkb).hexdigest(),
            },
        ),
        "area_fact": facts.of(registered, {"/data/area_mu": round(parcel.area_mu, 4)}),
    }
    land_use = record.land_use
    found["land_use_fact"] = (
        facts.of(land_use.seq, {land_use.pointer: parcel.land_use})
        if land_use is not None
        else facts.of(registered, {"/data/land_use": parcel.land_use})
    )
    if crop is not None and on is not None:
        crop_entry = record.crop_on(landuse.season_period, on)
        if crop_entry is not None:
            found["crop_fact"] = facts.of(crop_entry.seq, {crop_entry.pointer: crop})
        elif record.registration_records_crops:
            # The ledger records crops, yet none for this season: the row was added behind it.
            season = landuse.season_of(on)
            found["crop_fact"] = facts.of(registered, {pointer("data", "crops", season): crop})
        else:
            found["crop_fact"] = facts.unrecorded(registered)
    return found


def _timeline(
    view: ConsumerView,
    chain: _Chain,
    lot_names: Mapping[tuple[str, str], str],
    harvests: Mapping[str, _Harvest],
) -> None:
    nodes = chain.nodes
    live = [
        node
        for node in nodes.values()
        if node["type"] == "event"
        and not node.get("error_declaration")
        and not node.get("declared_erroneous")
    ]
    on_parcels: dict[str, list[str]] = defaultdict(list)
    for edge in chain.edges:
        if edge["type"] == "on":
            on_parcels[edge["from"]].append(edge["to"])
        if edge["type"] == "harvested_into" and edge.get("event"):
            on_parcels[edge["event"]].append(edge["from"])
    corrective_ids: set[str] = set()
    for node in nodes.values():
        if not node.get("error_declaration"):
            continue
        declaration = chain.event_data(node) or {}
        declared = declaration.get("errorDeclaration") or {}
        corrective_ids.update(declared.get("correctiveEventIDs") or [])
        reason = str(declared.get("reason") or "unknown").rsplit("/", 1)[-1]
        try:
            declared_at = _parse_time(str(declared["declarationTime"]))
        except (KeyError, ValueError):
            declared_at = chain.event_time(node)
        view.corrections.append(
            Correction(
                step=step_key(declaration.get("bizStep", node.get("biz_step"))),
                when=_local(chain.event_time(node)),
                declared=_local(declared_at),
                reason=f"reason_{reason.removeprefix('ER-')}",
                ledger_seq=node["ledger_seq"],
            )
        )
    steps: list[Step] = []
    for node in live:
        body = chain.event_data(node)
        if body is None:
            # The entry cannot be read (edited or removed): the step is still listed, with its
            # entry, so the reader's browser shows that it fails.
            body = {}
        key = step_key(body.get("bizStep", node.get("biz_step")))
        dkbms = sorted(set(on_parcels.get(node["id"], [])))
        happened = chain.event_time(node)
        harvest_after = min(
            (harvests[d].when for d in dkbms if d in harvests and harvests[d].when > happened),
            default=None,
        )
        steps.append(
            Step(
                when=_local(happened),
                step=key,
                details=describe(body, key, lot_names, harvest_after),
                parcels=tuple(d[-5:] for d in dkbms),
                ledger_seqs=(node["ledger_seq"],),
                corrective=node["id"] in corrective_ids,
            )
        )
    view.timeline = merge_steps(sorted(steps, key=lambda s: (s.when, s.ledger_seqs)))
    view.corrections.sort(key=lambda c: c.when)


def _same_work(a: Sequence[Detail], b: Sequence[Detail]) -> bool:
    """The same work, whatever the wait until each parcel's harvest."""
    return [d for d in a if d.label != WAITED] == [d for d in b if d.label != WAITED]


def _closest_to_harvest(a: tuple[Detail, ...], b: tuple[Detail, ...]) -> tuple[Detail, ...]:
    """Of two sprayings merged into one line, keep the shorter wait before harvest."""

    def waited(details: Sequence[Detail]) -> float:
        return next((float(d.value.split()[0]) for d in details if d.label == WAITED), math.inf)

    return a if waited(a) <= waited(b) else b


def merge_steps(steps: Sequence[Step]) -> list[Step]:
    """Fold the same work on several parcels over a few days into one line of the timeline.

    Sowing five parcels over three days is one step for a reader; each event keeps its own
    ledger link. Work with different details (another fertilizer, another dose) stays apart.
    """
    merged: list[Step] = []
    for step in steps:
        last = merged[-1] if merged else None
        if (
            last is not None
            and step.parcels
            and last.step == step.step
            and _same_work(last.details, step.details)
            and last.corrective == step.corrective
            and not set(last.parcels) & set(step.parcels)
            and (step.when - last.when) <= MERGE_WITHIN
        ):
            merged[-1] = dataclasses.replace(
                last,
                details=_closest_to_harvest(last.details, step.details),
                parcels=last.parcels + step.parcels,
                ledger_seqs=last.ledger_seqs + step.ledger_seqs,
                until=step.when if step.when.date() != last.when.date() else last.until,
            )
        else:
            merged.append(step)
    return merged


@dataclass
class _Day:
    """One metric on one day, from the day's seals (several parts: late readings)."""

    low: float
    high: float
    total: float  # mean × count, summed over the parts
    count: int

    def add(self, low: float, high: float, mean: float, count: int) -> None:
        self.low, self.high = min(self.low, low), max(self.high, high)
        self.total += mean * count
        self.count += count


def sealed_days(
    entries: Iterable[tuple[int, str, bytes]], first: dt.date, last: dt.date
) -> tuple[dict[str, dict[dt.date, _Day]], list[int]]:
    """Per metric and China day, the readings' range and mean as the seal entries of a parcel
    record them (the parts of a day combined); and the indexes of those entries."""
    found: dict[str, dict[dt.date, _Day]] = defaultdict(dict)
    seqs: list[int] = []
    for seq, kind, body in entries:
        if kind != seal.SEAL_KIND:
            continue
        data = reads.data_of(body)
        try:
            day = dt.date.fromisoformat(str(data.get("day")))
        except ValueError:
            seqs.append(seq)  # unreadable: its entry is still checked, and fails
            continue
        if not first <= day <= last:
            continue
        seqs.append(seq)
        for element in data.get("sensorElementList") or []:
            for report in (element or {}).get("sensorReport") or []:
                try:
                    metric = str(report["dv:metric"])
                    low, high = float(report["minValue"]), float(report["maxValue"])
                    mean, count = float(report["meanValue"]), int(report["dv:count"])
                except (KeyError, TypeError, ValueError):
                    continue
                if day in found[metric]:
                    found[metric][day].add(low, high, mean, count)
                else:
                    found[metric][day] = _Day(low, high, mean * count, count)
    return found, seqs


def _conditions(
    session: Session, view: ConsumerView, harvests: Mapping[str, dt.datetime], language: str
) -> None:
    """Soil conditions per parcel and day up to its harvest, drawn from the seal entries of its
    readings (what the ledger records, not the readings table)."""
    sown: dict[str, dt.date] = {}
    labels = {p.dkbm: p.label for p in view.parcels}
    for step in view.timeline:
        if step.step == "step_planting":
            for dkbm in (d for d in labels if d[-5:] in step.parcels):
                sown.setdefault(dkbm, step.when.date())
    charted = sorted(harvests)[:MAX_CHARTED_PARCELS]
    chains = reads.chain_entries(session, [seal.chain_key(dkbm) for dkbm in charted])
    for dkbm in charted:
        last = _local(harvests[dkbm]).date()
        first = sown.get(dkbm, last - dt.timedelta(days=DEFAULT_SEASON_DAYS))
        if first > last or (last - first).days > 400:
            first = last - dt.timedelta(days=DEFAULT_SEASON_DAYS)
        days, seqs = sealed_days(chains.get(seal.chain_key(dkbm), []), first, last)
        charts: list[Chart] = []
        for metric in readings.SUMMARY_METRICS:
            values = [
                drawing.DayValue(day, d.low, round(d.total / d.count, 3), d.high)
                for day, d in sorted(days.get(metric, {}).items())
                if d.count
            ]
            if not values:
                continue
            unit = metrics.CATALOGUE[metric].unit
            svg = drawing.daily_chart(
                values,
                first=first,
                last=last,
                unit=unit,
                colour=CHART_COLOURS.get(metric, "#555"),
                month_label=_month_label(language),
            )
            charts.append(Chart(metric, unit, svg))
        if charts:
            view.conditions.append(
                Conditions(
                    dkbm=dkbm,
                    label=labels.get(dkbm, dkbm[-5:]),
                    first=first,
                    last=last,
                    sealed_days=len({day for per_day in days.values() for day in per_day}),
                    charts=tuple(charts),
                    fact=facts.of_entries(seqs),
                )
            )


def _certificates(session: Session, view: ConsumerView, chain: _Chain, pieces: str) -> None:
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
        quantity=quantity_text(certificate.quantity, certificate.unit, pieces=pieces),
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
    shown = {"yield": f"{value:.0f}", "mass_balance": f"{value:.3f}"}.get(kind, f"{value:.1f}")
    params = {
        "value": shown,
        "low": _number(float(expected[0])),
        "high": _number(float(expected[1])),
        "message": str(flag.get("message", "")),
    }
    if kind in ("yield", "mass_balance", "pre_harvest_interval"):
        return Flag(f"flag_{kind}", params)
    return Flag("flag_other", params)
