"""The console's products: the cooperative's products, registering one, its plausible ranges.

Registering goes through ``trace.products.register_product``, as ``POST /api/v1/products`` does
(its ledger entry ``trace.product.registered``); the ranges behind the plausibility flags
through ``trace.products.update_plausibility``, as ``PATCH /api/v1/products/{gtin}``.
"""

from __future__ import annotations

from typing import Any, Final

from digital_village.ledger.log import Ledger
from digital_village.trace import products
from digital_village.trace.identifiers import COUNT_UNITS
from digital_village.web import manage_forms as forms
from digital_village.web.manage_context import Console
from digital_village.web.manage_forms import Done, Form, Mistakes

# Net content of a packed product: the units a label prints.
NET_UNITS: Final = ("LTR", "MLT", "KGM", "GRM")
MAX_NET: Final = 100_000.0


def view(console: Console, form: Form, mistakes: Mistakes, check: bool) -> dict[str, Any]:
    """The cooperative's products and the form to register one (checked when filled)."""
    if check and "gtin" in form:
        _checked(console, form, mistakes, complete=False)
    return {
        "products": products.list_products(
            session=console.session, cooperative_id=console.cooperative_id
        ),
        "categories": list(products.CATEGORIES),
        "net_units": NET_UNITS,
        "yield_categories": {
            name for name, defaults in products.CATEGORIES.items() if defaults.yield_per_mu
        },
    }


def _checked(
    console: Console, form: Form, mistakes: Mistakes, *, complete: bool
) -> tuple[str, str, str, float | None, str | None] | None:
    """The form's product (GTIN-14, name, category, net content), each mistake noted."""
    gtin = forms.gtin(form, mistakes)
    if gtin is not None:
        taken = products.products_by_gtin(session=console.session, gtins=[gtin])
        if gtin in taken:
            mistakes.add("gtin", "err_gtin_taken", gtin=gtin)
    name = form.text("name")
    if complete and not name:
        mistakes.add("name", "err_required")
    category = form.text("category")
    defaults = products.CATEGORIES.get(category)
    if defaults is None and (complete or category):
        mistakes.add("category", "err_category")
    net_quantity = net_unit = None
    if defaults is not None and defaults.unit in COUNT_UNITS:
        net_quantity = forms.number(form, mistakes, "net_quantity", maximum=MAX_NET)
        net_unit = form.text("net_unit")
        if net_quantity is not None and net_unit not in NET_UNITS:
            mistakes.add("net_unit", "err_net")
    elif defaults is not None and form.text("net_quantity"):
        mistakes.add("net_quantity", "err_net_only_pieces")
    if mistakes or gtin is None or defaults is None:
        return None
    return gtin, name, category, net_quantity, net_unit


def register(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """Register the form's product for the manager's cooperative."""
    checked = _checked(console, form, mistakes, complete=True)
    if checked is None:
        return None
    gtin, name, category, net_quantity, net_unit = checked
    product = products.register_product(
        session=console.session,
        ledger=ledger,
        actor=console.actor,
        gtin=gtin,
        name=name,
        category=category,
        cooperative_id=console.cooperative_id,
        net_quantity=net_quantity,
        net_unit=net_unit if net_quantity is not None else None,
    )
    return Done(seqs=[product.ledger_seq], lines=[f"{product.name} · {product.gtin}"])


def edit_ranges(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """Change the plausible yield (crops) or output ratio (processed products) of a product."""
    del ledger  # the ranges are settings of the flags, not facts on the ledger
    gtin = forms.gtin(form, mistakes)
    if gtin is None:
        return None
    product = products.get_product(session=console.session, gtin=gtin)
    console.actor.require_cooperative(product.cooperative_id)
    low = forms.number(form, mistakes, "low", positive=False, maximum=100_000)
    high = forms.number(form, mistakes, "high", positive=False, maximum=100_000)
    for name in ("low", "high"):
        if name in mistakes.by_field:
            mistakes.by_field[f"{name}-{gtin}"] = mistakes.by_field.pop(name)
    if low is not None and high is not None and not 0 <= low <= high:
        mistakes.add(f"high-{gtin}", "err_range")
    if mistakes or low is None or high is None:
        return None
    defaults = products.CATEGORIES.get(product.category)
    crop = defaults is not None and defaults.yield_per_mu is not None
    products.update_plausibility(
        session=console.session,
        actor=console.actor,
        gtin=gtin,
        yield_per_mu=(low, high) if crop else None,
        ratio=None if crop else (low, high),
    )
    return Done(seqs=[], lines=[f"{product.name} · {low:g}–{high:g}"])
