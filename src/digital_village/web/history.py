"""The history a consumer page shows: the lot's trace graph with its entries read once
(:class:`Chain`), and the corrected timeline of its events, in the reader's terms.

Steps, times and details come from the events' ledger entries themselves (never from the rows
that index them); each step keeps the indexes of its entries, which the page marks as facts. An
event declared erroneous (EPCIS errorDeclaration) is left out, the corrective event is in, and
the correction is listed with its reason and date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from digital_village.ledger import reads
from digital_village.trace import lineage, products, recorded
from digital_village.trace.identifiers import IdentifierError, parse_gtin_identifier
from digital_village.trace.models import Lot
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


WAITED: Final = "detail_waited"


MERGE_WITHIN: Final = dt.timedelta(days=10)


def number_text(value: float) -> str:
    """A quantity as people write it: 1940.4, 5, 0.38 (no float noise, no needless zeros)."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text


def quantity_text(value: float, unit: str, *, pieces: str) -> str:
    """``1,940.4 kg``, ``6 瓶``-style (``pieces`` is the word for counted items)."""
    if unit in COUNTED:
        return f"{number_text(value)} {pieces}"
    return f"{number_text(value)} {UNIT_SYMBOLS.get(unit, unit)}"


def local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(CHINA)


def parse_time(text: str) -> dt.datetime:
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
                sprayed = parse_time(str(body["eventTime"]))
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


@dataclass
class Chain:
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
            return parse_time(str(text)) if text else parse_time(node["event_time"])
        except ValueError:
            return parse_time(node["event_time"])

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


def read_chain(session: Session, trace: Mapping[str, Any]) -> Chain:
    nodes: dict[str, dict[str, Any]] = {node["id"]: node for node in trace["nodes"]}
    lot_keys = [(n["gtin"], n["lot"]) for n in nodes.values() if n["type"] == "lot"]
    lots = products.lots_by_key(session=session, keys=lot_keys)
    changes = lineage.lot_entries(session=session, lot_ids=[lot.id for lot in lots.values()])
    seqs = {n["ledger_seq"] for n in nodes.values() if n["type"] == "event"}
    seqs |= {last for last, _ in changes.values()}
    entries = {
        seq: reads.data_of(body) for seq, (_, body) in reads.entries_by_seq(session, seqs).items()
    }
    return Chain(nodes, trace["edges"], entries, lots, changes)


def timeline(
    chain: Chain,
    lot_names: Mapping[tuple[str, str], str],
    harvests: Mapping[str, dt.datetime],
) -> tuple[list[Step], list[Correction]]:
    """The corrected history: each live event as a step (the same work on several parcels over
    a few days merged), and each correction; times, steps and details from the entries."""
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
    # The parcels' chips read as the origin's list and map do: never two alike.
    labels = drawing.parcel_labels(
        [node["id"] for node in nodes.values() if node["type"] == "parcel"]
        + [dkbm for found in on_parcels.values() for dkbm in found]
    )
    corrections: list[Correction] = []
    corrective_ids: set[str] = set()
    for node in nodes.values():
        if not node.get("error_declaration"):
            continue
        declaration = chain.event_data(node) or {}
        declared = declaration.get("errorDeclaration") or {}
        corrective_ids.update(declared.get("correctiveEventIDs") or [])
        reason = str(declared.get("reason") or "unknown").rsplit("/", 1)[-1]
        try:
            declared_at = parse_time(str(declared["declarationTime"]))
        except (KeyError, ValueError):
            declared_at = chain.event_time(node)
        corrections.append(
            Correction(
                step=step_key(declaration.get("bizStep", node.get("biz_step"))),
                when=local(chain.event_time(node)),
                declared=local(declared_at),
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
            (harvests[d] for d in dkbms if d in harvests and harvests[d] > happened),
            default=None,
        )
        steps.append(
            Step(
                when=local(happened),
                step=key,
                details=describe(body, key, lot_names, harvest_after),
                parcels=tuple(labels[d] for d in dkbms),
                ledger_seqs=(node["ledger_seq"],),
                corrective=node["id"] in corrective_ids,
            )
        )
    merged = merge_steps(sorted(steps, key=lambda s: (s.when, s.ledger_seqs)))
    return merged, sorted(corrections, key=lambda c: c.when)


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
