"""The console's harvest and processing: a new lot from parcels, a new lot from lots.

A harvest is chosen from the parcels the cooperative's members contract, or the cooperative
runs, on the day (``parcels.held_on``: what ``trace.rules`` will require of the event); before
saving, the panel says which chosen parcel was not held that day and whether the yield per 亩 is
plausible (``trace.plausibility.yield_flag``, the flag the trace graph shows). Processing shows
its mass balance (``trace.plausibility.mass_balance_flag``) and refuses more out than in, or
more of a lot than is left. Both are recorded as events built by ``trace.builders`` and captured
by ``trace.capture`` (web/manage_context.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from digital_village.trace import builders, plausibility, products, tracing
from digital_village.trace.identifiers import COUNT_UNITS, convert
from digital_village.trace.models import Lot, Product
from digital_village.web import manage_forms as forms
from digital_village.web import manage_map
from digital_village.web.manage_context import Console, record
from digital_village.web.manage_forms import Done, Form, Mistakes

# A yield beyond this many times the crop's highest plausible one is a typing error, refused.
ABSURD_FACTOR: Final = 3.0
INPUT_ROWS: Final = 3
RECENT_LOTS: Final = 12
STEPS: Final = ("pressing", "milling")


@dataclass(frozen=True)
class Choice:
    dkbm: str
    area_mu: float
    holder: str  # the member's masked name, or "" when the cooperative runs it
    crop: str | None
    row: parcels.HeldParcel


def _held(console: Console, on: dt.date, *, shapes: bool = False) -> dict[str, Choice]:
    """DKBM → the parcels members hold or the cooperative runs on the day (with their shapes
    for the map when asked)."""
    members = regions.list_households(session=console.session, actor=console.actor)
    names = {member.id: regions.mask_name(member.name) for member in members}
    rows = parcels.held_on(
        session=console.session,
        household_ids=list(names),
        cooperative_id=console.cooperative_id,
        on=on,
        shapes=shapes,
    )
    crops = parcels.crops_on(
        session=console.session, parcel_ids=[row.parcel_id for row in rows], on=on
    )
    return {
        row.dkbm: Choice(
            dkbm=row.dkbm,
            area_mu=row.area_mu,
            holder=names.get(row.holding.contractor_household_id or 0, ""),
            crop=crops.get(row.parcel_id),
            row=row,
        )
        for row in rows
    }


def _own_products(console: Console) -> list[Product]:
    return list(
        products.list_products(session=console.session, cooperative_id=console.cooperative_id)
    )


def _crops(console: Console) -> list[Product]:
    """The cooperative's products that a harvest makes (those with a yield per 亩)."""
    return [p for p in _own_products(console) if p.yield_max_per_mu is not None]


def _free_lot(form: Form, mistakes: Mistakes, console: Console, product: Product | None) -> str:
    lot = forms.lot_code(form, mistakes)
    if lot is None or product is None:
        return lot or ""
    if (product.gtin, lot) in products.lots_by_key(
        session=console.session, keys=[(product.gtin, lot)]
    ):
        mistakes.add("lot", "err_lot_taken", lot=lot, name=product.name)
    return lot


def _chosen(options: list[Product], form: Form, mistakes: Mistakes, name: str) -> Product | None:
    wanted = form.text(name)
    found = next((product for product in options if product.gtin == wanted), None)
    if found is None:
        mistakes.add(name, "err_product")
    return found


@dataclass
class HarvestPlan:
    product: Product | None
    lot: str
    kilograms: float | None
    day: dt.date
    dkbms: list[str]
    area_mu: float
    per_mu: float | None = None
    implausible: bool = False


def _check_yield(plan: HarvestPlan, form: Form, mistakes: Mistakes) -> None:
    product = plan.product
    if product is None or plan.kilograms is None or plan.area_mu <= 0:
        return
    plan.per_mu = plan.kilograms / plan.area_mu
    low, high = product.yield_min_per_mu, product.yield_max_per_mu
    shown = {"per_mu": f"{plan.per_mu:,.0f}", "low": f"{low or 0:g}", "high": f"{high or 0:g}"}
    if high is not None and plan.per_mu > high * ABSURD_FACTOR:
        mistakes.add("kg", "err_absurd_yield", **shown)
        return
    flag = plausibility.yield_flag(
        subject=plan.lot,
        product=product.name,
        kilograms=plan.kilograms,
        area_mu=plan.area_mu,
        low=low,
        high=high,
    )
    plan.implausible = flag is not None
    if flag is not None and not form.flag("confirm"):
        mistakes.add("kg", "err_implausible_yield", **shown)


def _plan_harvest(
    console: Console, form: Form, mistakes: Mistakes, held: dict[str, Choice], on: dt.date
) -> HarvestPlan:
    """The harvest the form describes, each mistake noted next to its field."""
    product = _chosen(_crops(console), form, mistakes, "gtin")
    dkbms = form.many("parcel")
    if not dkbms:
        mistakes.add("parcel", "err_no_parcels")
    unheld = [dkbm for dkbm in dkbms if dkbm not in held]
    if unheld:
        known = parcels.parcel_facts(session=console.session, dkbms=unheld)
        first = unheld[0]
        key = "err_not_held" if first in known else "err_unknown_parcel"
        mistakes.add("parcel", key, dkbm=first, day=on.isoformat())
    kilograms = forms.number(form, mistakes, "kg", maximum=console.settings.max_quantity)
    lot = _free_lot(form, mistakes, console, product)
    area = sum(held[dkbm].area_mu for dkbm in dkbms if dkbm in held)
    plan = HarvestPlan(product, lot, kilograms, on, dkbms, area)
    if not unheld:
        _check_yield(plan, form, mistakes)
    return plan


def harvest_view(console: Console, form: Form, mistakes: Mistakes, check: bool) -> dict[str, Any]:
    """Parcels held on the day, the crops, the latest lots; with a filled form, its checks."""
    on = forms.day(form, mistakes)
    held = _held(console, on, shapes=True)
    chosen = form.many("parcel")
    plan: HarvestPlan | None = None
    if chosen or "kg" in form:
        plan = forms.checked(
            form,
            mistakes,
            check,
            lambda found: _plan_harvest(console, form, found, held, on),
            "parcel",
        )
    return {
        "day": on.isoformat(),
        "held": list(held.values()),
        "chosen": set(chosen),
        "unheld": [dkbm for dkbm in chosen if dkbm not in held],
        "map_svg": manage_map.harvest_map([c.row for c in held.values()], set(chosen)),
        "crops": _crops(console),
        "plan": plan,
        "suggested_lot": forms.suggested_lot(console, "H", on),
        "lots": lot_rows(console),
    }


def harvest(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """Record the form's harvest: one event, a new lot."""
    on = forms.day(form, mistakes)
    plan = _plan_harvest(console, form, mistakes, _held(console, on), on)
    if mistakes or plan.product is None or plan.kilograms is None:
        return None
    event = builders.harvest(
        gtin=plan.product.gtin,
        lot=plan.lot,
        kilograms=plan.kilograms,
        dkbms=plan.dkbms,
        when=forms.event_time(on),
        base_url=console.base_url,
    )
    captured = record(console, ledger, [event])
    line = f"{plan.product.name} · {plan.lot} · {forms.amount(plan.kilograms)} kg"
    return forms.recorded(captured, line, link=forms.lot_link(plan.product.gtin, plan.lot))


@dataclass(frozen=True)
class LotRow:
    lot: Lot
    product: Product
    left: float

    @property
    def key(self) -> str:
        return f"{self.lot.gtin} {self.lot.lot}"


def lot_rows(console: Console, *, bulk_only: bool = False) -> list[LotRow]:
    """The cooperative's latest lots with what is left of each."""
    own = {product.id: product for product in _own_products(console)}
    lots = products.lots_of_cooperative(
        session=console.session, cooperative_id=console.cooperative_id, limit=RECENT_LOTS * 4
    )
    rows = [
        LotRow(lot, own[lot.product_id], products.remaining(lot))
        for lot in lots
        if lot.product_id in own
    ]
    if bulk_only:
        rows = [row for row in rows if row.product.unit not in COUNT_UNITS and row.left > 0]
    return rows[: RECENT_LOTS * (2 if bulk_only else 1)]


@dataclass
class ProcessPlan:
    inputs: list[tuple[LotRow, float]]
    total_in: float
    unit_in: str
    product: Product | None
    lot: str
    amount: float | None
    ratio: float | None = None
    implausible: bool = False


def _plan_inputs(
    form: Form, mistakes: Mistakes, rows: dict[str, LotRow]
) -> tuple[list[tuple[LotRow, float]], float, str]:
    inputs: list[tuple[LotRow, float]] = []
    total, unit = 0.0, ""
    for index in range(1, INPUT_ROWS + 1):
        key, lot_field, amount_field = (
            form.text(f"in_lot_{index}"),
            f"in_lot_{index}",
            f"in_amount_{index}",
        )
        if not key and not form.text(amount_field):
            continue
        row = rows.get(key)
        if row is None:
            mistakes.add(lot_field, "err_lot")
            continue
        if any(chosen.key == key for chosen, _ in inputs):
            mistakes.add(lot_field, "err_same_lot")
            continue
        used = forms.number(form, mistakes, amount_field, maximum=1e12)
        if used is None:
            continue
        unit = unit or row.product.unit
        if used > row.left * (1 + products.QUANTITY_EPSILON):
            left = forms.quantity(mistakes.language, row.left, row.product.unit)
            mistakes.add(amount_field, "err_lot_left", left=left)
        converted = convert(used, row.product.unit, unit)
        if converted is None:
            mistakes.add(lot_field, "err_unit_mismatch")
            continue
        inputs.append((row, used))
        total += converted
    if not inputs and "in_lot_1" not in mistakes:
        mistakes.add("in_lot_1", "err_lot")
    return inputs, total, unit


def _plan_process(console: Console, form: Form, mistakes: Mistakes) -> ProcessPlan:
    rows = {row.key: row for row in lot_rows(console, bulk_only=True)}
    inputs, total, unit = _plan_inputs(form, mistakes, rows)
    outputs = [p for p in _own_products(console) if p.unit not in COUNT_UNITS]
    product = _chosen(outputs, form, mistakes, "out_gtin")
    amount = forms.number(form, mistakes, "out_amount", maximum=console.settings.max_quantity)
    lot = _free_lot(form, mistakes, console, product)
    if form.text("step") not in STEPS:
        mistakes.add("step", "err_required")
    plan = ProcessPlan(inputs, total, unit, product, lot, amount)
    if amount is None or total <= 0 or product is None:
        return plan
    plan.ratio = amount / total
    shown = {"output": forms.amount(amount), "input": forms.amount(total)}
    if amount > total * (1 + products.QUANTITY_EPSILON):
        mistakes.add("out_amount", "err_more_out", **shown)
        return plan
    flag = plausibility.mass_balance_flag(
        subject=lot,
        product=product.name,
        output=amount,
        input_=total,
        unit_out=product.unit,
        unit_in=unit,
        low=product.ratio_min,
        high=product.ratio_max,
    )
    plan.implausible = flag is not None
    if flag is not None and not form.flag("confirm"):
        mistakes.add(
            "out_amount",
            "err_implausible_ratio",
            ratio=f"{plan.ratio:.3f}",
            low=f"{product.ratio_min or 0:g}",
            high=f"{product.ratio_max or 0:g}",
        )
    return plan


def processing_view(
    console: Console, form: Form, mistakes: Mistakes, check: bool
) -> dict[str, Any]:
    """Lots to process, products to make, and with a filled form its mass balance."""
    plan: ProcessPlan | None = None
    if form.values():
        plan = forms.checked(
            form, mistakes, check, lambda found: _plan_process(console, form, found)
        )
    return {
        "inputs": lot_rows(console, bulk_only=True),
        "input_rows": range(1, INPUT_ROWS + 1),
        "outputs": [p for p in _own_products(console) if p.unit not in COUNT_UNITS],
        "steps": STEPS,
        "plan": plan,
        "suggested_lot": forms.suggested_lot(console, "P"),
        "lots": lot_rows(console),
    }


def process(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """Record the form's processing: one TransformationEvent, a new lot."""
    plan = _plan_process(console, form, mistakes)
    if mistakes or plan.product is None or plan.amount is None:
        return None
    event = builders.transformation(
        step=form.text("step"),
        inputs=[(row.lot.gtin, row.lot.lot, used, row.product.unit) for row, used in plan.inputs],
        outputs=[(plan.product.gtin, plan.lot, plan.amount, plan.product.unit)],
        when=forms.event_time(tracing.china_today()),
        base_url=console.base_url,
    )
    captured = record(console, ledger, [event])
    line = f"{plan.product.name} · {plan.lot} · {forms.amount(plan.amount)} {plan.product.unit}"
    return forms.recorded(captured, line, link=forms.lot_link(plan.product.gtin, plan.lot))
