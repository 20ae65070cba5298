"""The console's packing, 承诺达标合格证 and label sheets.

Packing fills a bulk lot into serialised pieces of a packed product (a ``commissioning``
TransformationEvent, ``trace.builders.bottling``) and, when asked, packs them into cases (one
``packing`` AggregationEvent a case, its parent an SSCC); the events are captured together by
``trace.capture``. Certificates are issued by ``trace.products.issue_certificate`` with the
lot's origin from ``trace.tracing.origin_of_lot``, as ``POST /api/v1/lots/{gtin}/{lot}/
certificates`` does; label sheets are the label route's (``/api/v1/labels/…/sheet.pdf``), which
the page downloads with the manager's token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from digital_village.gs1 import keys
from digital_village.ledger.log import Ledger
from digital_village.trace import builders, lineage, products, tracing
from digital_village.trace.identifiers import COUNT_UNITS, convert
from digital_village.trace.models import Certificate, Product
from digital_village.web import manage_forms as forms
from digital_village.web.labels import MAX_SHEET_LABELS
from digital_village.web.manage_context import Console, record
from digital_village.web.manage_forms import Done, Form, Mistakes
from digital_village.web.manage_season import LotRow, lot_rows

MAX_CASE: Final = 100
SERIAL_WIDTH: Final = 4


def _packed_products(console: Console) -> list[Product]:
    """The cooperative's products counted in pieces that say their net content."""
    return [
        product
        for product in products.list_products(
            session=console.session, cooperative_id=console.cooperative_id
        )
        if product.unit in COUNT_UNITS and product.net_quantity and product.net_unit
    ]


@dataclass
class PackPlan:
    source: LotRow | None
    product: Product | None
    serials: list[str]
    uses: float | None
    case_size: int
    lot: str


def _serials(form: Form, mistakes: Mistakes, count: int) -> list[str]:
    first = form.text("first_serial") or "1".zfill(SERIAL_WIDTH)
    if not first.isdigit() or len(first) > 20:
        mistakes.add("first_serial", "err_serial")
        return []
    width, start = len(first), int(first)
    return [str(n).zfill(width) for n in range(start, start + count)]


def _plan_pack(console: Console, form: Form, mistakes: Mistakes) -> PackPlan:
    sources = {row.key: row for row in lot_rows(console, bulk_only=True)}
    source = sources.get(form.text("source"))
    if source is None:
        mistakes.add("source", "err_lot")
    product = next((p for p in _packed_products(console) if p.gtin == form.text("gtin")), None)
    if product is None:
        mistakes.add("gtin", "err_not_packaged")
    count = forms.whole(form, mistakes, "count", low=1, high=MAX_SHEET_LABELS, key="err_count")
    case_size = forms.whole(form, mistakes, "case_size", low=0, high=MAX_CASE, key="err_case_size")
    serials = _serials(form, mistakes, count)
    lot = ""
    if product is not None:
        lot = forms.lot_code(form, mistakes) or ""
        if lot and products.lots_by_key(session=console.session, keys=[(product.gtin, lot)]):
            mistakes.add("lot", "err_lot_taken", lot=lot, name=product.name)
        if serials and "count" not in mistakes:
            keys_ = [(product.gtin, serial) for serial in serials]
            taken = products.units_by_key(session=console.session, keys=keys_)
            if taken:
                mistakes.add("first_serial", "err_serial_taken", serial=min(s for _, s in taken))
    plan = PackPlan(source, product, serials, None, case_size, lot)
    if source is None or product is None or product.net_quantity is None or "count" in mistakes:
        return plan
    each = convert(product.net_quantity, product.net_unit or "", source.product.unit)
    if each is None:
        mistakes.add("gtin", "err_unit_mismatch")
        return plan
    plan.uses = each * count
    if plan.uses > source.left * (1 + products.QUANTITY_EPSILON):
        left = forms.quantity(mistakes.language, source.left, source.product.unit)
        mistakes.add("count", "err_lot_left", left=left)
    return plan


def packing_view(console: Console, form: Form, mistakes: Mistakes, check: bool) -> dict[str, Any]:
    """Bulk lots, packed products, and with a filled form what the packing uses."""
    plan: PackPlan | None = None
    if form.values():
        plan = forms.checked(form, mistakes, check, lambda found: _plan_pack(console, form, found))
    return {
        "sources": lot_rows(console, bulk_only=True),
        "packed": _packed_products(console),
        "plan": plan,
        "suggested_lot": forms.suggested_lot(console, "B"),
        "lots": lot_rows(console),
    }


def case_uri(base_url: str, product: Product, lot: str, index: int) -> str:
    """The Digital Link of a case's SSCC: the GTIN's company digits and a reference drawn from
    (GTIN, lot, case), so the same packing always names the same cases."""
    seed = f"{product.gtin}/{lot}/{index}".encode()
    reference = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % 10**9
    body = "0" + product.gtin[1:8] + f"{reference:09d}"
    return f"{base_url.rstrip('/')}/00/{body}{keys.check_digit(body)}"


def pack(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """Record the form's packing: the pieces of a new lot, and their cases."""
    plan = _plan_pack(console, form, mistakes)
    if mistakes or plan.source is None or plan.product is None or plan.uses is None:
        return None
    source, product = plan.source, plan.product
    when = forms.event_time(tracing.china_today())
    events = [
        builders.bottling(
            source=(source.lot.gtin, source.lot.lot, plan.uses, source.product.unit),
            gtin=product.gtin,
            lot=plan.lot,
            serials=plan.serials,
            when=when,
            base_url=console.base_url,
        )
    ]
    size = plan.case_size
    cases = [plan.serials[i : i + size] for i in range(0, len(plan.serials), size)] if size else []
    for index, inside in enumerate(cases, start=1):
        events.append(
            builders.packing(
                parent=case_uri(console.base_url, product, plan.lot, index),
                gtin=product.gtin,
                lot=plan.lot,
                serials=inside,
                when=when,
                base_url=console.base_url,
            )
        )
    captured = record(console, ledger, events)
    made = console.m["serials_made"].format(
        first=plan.serials[0], last=plan.serials[-1], count=len(plan.serials), cases=len(cases)
    )
    return forms.recorded(
        captured, f"{product.name} · {plan.lot}", made, link=forms.lot_link(product.gtin, plan.lot)
    )


@dataclass(frozen=True)
class CertifiedLot:
    row: LotRow
    certificates: list[Certificate]
    serials: int

    @property
    def sheet(self) -> str:
        return f"/api/v1/labels/{self.row.lot.gtin}/{quote(self.row.lot.lot, safe='')}/sheet.pdf"

    @property
    def page(self) -> str:
        return f"/01/{self.row.lot.gtin}/10/{quote(self.row.lot.lot, safe='')}"


def certificates_view(
    console: Console, form: Form, mistakes: Mistakes, check: bool
) -> dict[str, Any]:
    """The cooperative's lots with their certificates and serials, and the form to issue one."""
    del form, mistakes, check  # nothing to check before issuing
    session = console.session
    lots = [
        CertifiedLot(
            row,
            list(products.certificates_of_lot(session=session, lot_id=row.lot.id)),
            lineage.count_units(session=session, lot_ids=[row.lot.id]),
        )
        for row in lot_rows(console)
    ]
    return {"certified": lots, "basis": list(products.BASIS)}


def certify(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """Issue a 承诺达标合格证 for the rest of the form's lot."""
    rows = {row.key: row for row in lot_rows(console)}
    row = rows.get(form.text("lot"))
    if row is None:
        mistakes.add("lot", "err_lot")
    contact = form.text("contact")
    if not contact:
        mistakes.add("contact", "err_contact")
    basis = [code for code in form.many("basis") if code in products.BASIS]
    if not basis:
        mistakes.add("basis", "err_basis")
    if mistakes or row is None:
        return None
    certificate = products.issue_certificate(
        session=console.session,
        ledger=ledger,
        actor=console.actor,
        gtin=row.lot.gtin,
        lot=row.lot.lot,
        contact=contact,
        basis=basis,
        origin=tracing.origin_of_lot(session=console.session, lot=row.lot),
        issued_on=tracing.china_today(),
    )
    return Done(
        seqs=[certificate.ledger_seq],
        lines=[console.m["certificate_number"].format(number=certificate.number)],
        links=[forms.lot_link(row.lot.gtin, row.lot.lot)],
    )
