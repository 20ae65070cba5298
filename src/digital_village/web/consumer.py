"""What the consumer page of a lot or a bottle shows, gathered from the chain, the map and the net.

``consumer_view`` builds a :class:`ConsumerView` — plain data, no HTML — from the services the
API uses: the backward trace of the lot (``trace.tracing``), the events' EPCIS JSON as recorded
on the ledger (``trace.store``), the parcels and their region names (``parcels``,
``regions``), the daily soil readings of each parcel over the season (``iot.queries``) and the
lot's 承诺达标合格证 (``trace.products``). The template turns it into words of the reader's
language.

What is shown is the corrected history: an event declared erroneous (EPCIS errorDeclaration)
is left out of the timeline, the corrective event is in it, and the correction itself is
listed with its reason and date. Nothing personal is shown: households by masked name only, no
phone numbers (a certificate's contact is left out), no identity numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.errors import DomainError
from digital_village.iot import queries as readings
from digital_village.ledger import log as ledger_log
from digital_village.parcels import geometry, landuse
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from digital_village.trace import products, store, tracing
from digital_village.trace.identifiers import IdentifierError, parse_gtin_identifier
from digital_village.trace.models import Lot, Product
from digital_village.trace.vocab import farm_step
from digital_village.web import drawing

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
    days: int
    sealed_days: int
    charts: tuple[Chart, ...]


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


@dataclass(frozen=True)
class Flag:
    """A doubt to show: a message key and the values its text needs."""

    key: str
    params: Mapping[str, Any]
    severity: str = "warn"


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
    harvests: list[dt.date] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    parcels: list[ParcelInfo] = field(default_factory=list)
    total_area_mu: float = 0.0
    map_svg: str = ""
    timeline: list[Step] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    conditions: list[Conditions] = field(default_factory=list)
    certificates: list[CertificateInfo] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    verify_seq: int | None = None
    products_in_chain: list[tuple[str, str]] = field(default_factory=list)  # (product, lot)


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


def _entry_event(session: Session, seq: int) -> dict[str, Any]:
    envelope = orjson.loads(ledger_log.get_entry(session, seq).body)
    event: dict[str, Any] = envelope["data"]["event"]
    return event


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
    nodes: dict[str, dict[str, Any]] = {node["id"]: node for node in trace["nodes"]}
    edges: list[dict[str, Any]] = trace["edges"]
    root = nodes[trace["root"]]
    lot_id = root["id"]
    lot_node = root
    product = products.get_product(session=session, gtin=lot_node["gtin"])
    cooperative = regions.get_cooperative(session=session, cooperative_id=product.cooperative_id)
    view = ConsumerView(
        level="lot",
        uri=root["uri"],
        gtin=lot_node["gtin"],
        product=product.name,
        lot=lot_node["lot"],
        serial=None,
        unit_status=None,
        cooperative=cooperative.name,
        quantity=quantity_text(lot_node["quantity"], lot_node["uom"], pieces=pieces),
        produced_at=_local(_parse_time(lot_node["produced_at"])),
    )
    lot_names = {
        (node["gtin"], node["lot"]): node["product"]
        for node in nodes.values()
        if node["type"] == "lot"
    }
    view.products_in_chain = [
        (node["product"], node["lot"])
        for node in sorted(
            (n for n in nodes.values() if n["type"] == "lot"), key=lambda n: n["produced_at"]
        )
    ]
    _origin(session, view, nodes, edges)
    harvest_by_parcel = _harvest_times(nodes, edges)
    _timeline(session, view, nodes, edges, lot_names, harvest_by_parcel)
    _conditions(session, view, harvest_by_parcel, language)
    _certificates(session, view, nodes, pieces)
    view.flags = [_trace_flag(flag) for flag in trace["flags"]]
    # The panel checks the latest live event recorded about the lot.
    seqs = [
        nodes[e["from"]]["ledger_seq"]
        for e in edges
        if e["to"] == lot_id
        and nodes.get(e["from"], {}).get("type") == "event"
        and not nodes[e["from"]].get("declared_erroneous")
        and not nodes[e["from"]].get("error_declaration")
    ]
    view.verify_seq = max(seqs) if seqs else None
    return view


def for_unit(view: ConsumerView, *, serial: str, status: str, uri: str) -> ConsumerView:
    """The page of one serialised item of the lot: the lot's view with its serial and status
    (an item withdrawn, voided or used up is flagged first)."""
    flags = list(view.flags)
    if status in ("decommissioned", "voided", "consumed"):
        flags.insert(0, Flag(f"flag_unit_{status}", {}))
    return dataclasses.replace(
        view, level="serial", serial=serial, unit_status=status, uri=uri, flags=flags
    )


def _harvest_times(
    nodes: Mapping[str, dict[str, Any]], edges: Sequence[dict[str, Any]]
) -> dict[str, dt.datetime]:
    """Parcel → when its harvest (the latest, for this trace) happened."""
    found: dict[str, dt.datetime] = {}
    for edge in edges:
        if edge["type"] == "harvested_into" and edge.get("event") in nodes:
            when = _parse_time(nodes[edge["event"]]["event_time"])
            if edge["from"] not in found or when > found[edge["from"]]:
                found[edge["from"]] = when
    return found


def _origin(
    session: Session,
    view: ConsumerView,
    nodes: Mapping[str, dict[str, Any]],
    edges: Sequence[dict[str, Any]],
) -> None:
    names = _Regions(session)
    holders: dict[str, str] = {}
    operators: dict[str, str] = {}
    for edge in edges:
        source = nodes.get(edge["from"], {})
        if edge["type"] == "holds" and source.get("type") == "household":
            holders[edge["to"]] = source["name"]
        if edge["type"] == "operates" and source.get("type") == "cooperative":
            operators[edge["to"]] = source["name"]
    harvests = _harvest_times(nodes, edges)
    view.harvests = sorted({_local(when).date() for when in harvests.values()})
    shapes: list[drawing.MapShape] = []
    for node in sorted((n for n in nodes.values() if n["type"] == "parcel"), key=lambda n: n["id"]):
        parcel = parcels.get_parcel(session=session, dkbm=node["id"])
        harvested = harvests.get(parcel.dkbm)
        crop = None
        if harvested is not None:
            # The crop of the season, asked well before the harvest: a harvest in May ends the
            # winter crop on a day the registry already counts as the summer season.
            growing = _local(harvested).date() - CROP_BEFORE_HARVEST
            crop = parcels.crops_on(session=session, parcel_ids=[parcel.id], on=growing).get(
                parcel.id
            )
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
            holder=holders.get(parcel.dkbm),
            operator=operators.get(parcel.dkbm),
        )
        view.parcels.append(info)
        place = f"{info.township}{info.village}"
        if place and place not in view.places:
            view.places.append(place)
        shapes.append(
            drawing.MapShape(label, geometry.to_gk(parcels.parcel_geometry(parcel), parcel.epsg))
        )
    view.total_area_mu = sum(p.area_mu for p in view.parcels)
    view.map_svg = drawing.parcel_map(shapes, scale_label=scale_label)


def _timeline(
    session: Session,
    view: ConsumerView,
    nodes: Mapping[str, dict[str, Any]],
    edges: Sequence[dict[str, Any]],
    lot_names: Mapping[tuple[str, str], str],
    harvests: Mapping[str, dt.datetime],
) -> None:
    live = [
        node
        for node in nodes.values()
        if node["type"] == "event"
        and not node.get("error_declaration")
        and not node.get("declared_erroneous")
    ]
    rows = store.events_by_event_id(session=session, event_ids=[node["id"] for node in live])
    ordered = [rows[node["id"]] for node in live if node["id"] in rows]
    bodies = dict(
        zip(
            (row.event_id for row in ordered),
            store.event_json(session=session, events=ordered),
            strict=True,
        )
    )
    on_parcels: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge["type"] == "on":
            on_parcels[edge["from"]].append(edge["to"])
        if edge["type"] == "harvested_into" and edge.get("event"):
            on_parcels[edge["event"]].append(edge["from"])
    corrective_ids: set[str] = set()
    for node in nodes.values():
        if not node.get("error_declaration"):
            continue
        declaration = _entry_event(session, node["ledger_seq"])
        declared = declaration.get("errorDeclaration") or {}
        corrective_ids.update(declared.get("correctiveEventIDs") or [])
        reason = str(declared.get("reason") or "unknown").rsplit("/", 1)[-1]
        view.corrections.append(
            Correction(
                step=step_key(node.get("biz_step")),
                when=_local(_parse_time(node["event_time"])),
                declared=_local(_parse_time(str(declared["declarationTime"]))),
                reason=f"reason_{reason.removeprefix('ER-')}",
                ledger_seq=node["ledger_seq"],
            )
        )
    steps: list[Step] = []
    for node in live:
        body = bodies.get(node["id"])
        if body is None:
            continue
        key = step_key(node.get("biz_step"))
        dkbms = sorted(set(on_parcels.get(node["id"], [])))
        happened = _parse_time(node["event_time"])
        harvest_after = min(
            (harvests[d] for d in dkbms if d in harvests and harvests[d] > happened),
            default=None,
        )
        steps.append(
            Step(
                when=_local(_parse_time(node["event_time"])),
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


def _conditions(
    session: Session, view: ConsumerView, harvests: Mapping[str, dt.datetime], language: str
) -> None:
    sown: dict[str, dt.date] = {}
    labels = {p.dkbm: p.label for p in view.parcels}
    for step in view.timeline:
        if step.step == "step_planting":
            for dkbm in (d for d in labels if d[-5:] in step.parcels):
                sown.setdefault(dkbm, step.when.date())
    for dkbm in sorted(harvests)[:MAX_CHARTED_PARCELS]:
        last = _local(harvests[dkbm]).date()
        first = sown.get(dkbm, last - dt.timedelta(days=DEFAULT_SEASON_DAYS))
        if first > last or (last - first).days > 400:
            first = last - dt.timedelta(days=DEFAULT_SEASON_DAYS)
        try:
            daily = readings.parcel_daily(session=session, dkbm=dkbm, first=first, last=last)
        except DomainError:
            continue
        days = daily["days"]
        charts: list[Chart] = []
        for metric, unit in daily["metrics"].items():
            values = [
                drawing.DayValue(
                    dt.date.fromisoformat(day["day"]),
                    day[metric]["min"],
                    day[metric]["mean"],
                    day[metric]["max"],
                )
                for day in days
                if metric in day
            ]
            if not values:
                continue
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
                    days=sum(1 for day in days if any(m in day for m in daily["metrics"])),
                    sealed_days=sum(1 for day in days if day.get("seals")),
                    charts=tuple(charts),
                )
            )


def _certificates(
    session: Session, view: ConsumerView, nodes: Mapping[str, dict[str, Any]], pieces: str
) -> None:
    seen: set[str] = set()
    for node in nodes.values():
        if node["type"] != "lot":
            continue
        row = products.get_lot(session=session, gtin=node["gtin"], lot=node["lot"])
        for certificate in products.certificates_of_lot(session=session, lot_id=row.id):
            if certificate.number in seen:
                continue
            seen.add(certificate.number)
            view.certificates.append(
                CertificateInfo(
                    number=certificate.number,
                    product=certificate.product_name,
                    quantity=quantity_text(certificate.quantity, certificate.unit, pieces=pieces),
                    origin=certificate.origin,
                    issued_on=certificate.issued_on,
                    issuer=certificate.issuer,
                    basis=tuple(orjson.loads(certificate.basis)),
                    commitments=tuple(orjson.loads(certificate.commitments)),
                    ledger_seq=certificate.ledger_seq,
                )
            )


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
