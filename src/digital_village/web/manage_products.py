"""The console's products: the cooperative's products, registering one, changing one.

Registering goes through ``trace.products.register_product``, as ``POST /api/v1/products`` does
(its ledger entry ``trace.product.registered``); a change of name, category or net content
through ``trace.product_changes.change_product`` (a ``trace.product.changed`` entry), the
ranges behind the plausibility flags through ``trace.products.update_plausibility``, both as
``PATCH /api/v1/products/{gtin}``. The change form's fields are named ``new_*`` (the register
form holds the plain names) and its mistakes are shown under ``<field>-<GTIN>``.
"""

from __future__ import annotations

from typing import Any, Final

from digital_village.errors import Conflict, Invalid
from digital_village.ledger.log import Ledger
from digital_village.trace import product_changes, products
from digital_village.trace.identifiers import COUNT_UNITS
from digital_village.web import manage_forms as forms
from digital_village.web.manage_context import Console
from digital_village.web.manage_forms import Done, Form, Mistakes
from digital_village.web.manage_words import words

# Net content of a packed product: the units a label prints.
NET_UNITS: Final = ("LTR", "MLT", "KGM", "GRM")
MAX_NET: Final = 100_000.0
# The change form's field for each field a service's error names.
EDIT_FIELDS: Final = {
    "name": "new_name",
    "category": "new_category",
    "net_quantity": "new_net_quantity",
    "net_unit": "new_net_unit",
    "unit": "new_net_quantity",
}


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
        "count_units": COUNT_UNITS,
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


def edit(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """Change a product's name, category and net content (a new entry on its chain)."""
    gtin = forms.gtin(form, mistakes)
    if gtin is None:
        return None
    product = products.get_product(session=console.session, gtin=gtin)
    console.actor.require_cooperative(product.cooperative_id)
    found = Mistakes(mistakes.language)
    name = form.text("new_name")
    if not name:
        found.add("new_name", "err_required")
    category = form.text("new_category")
    if category not in products.CATEGORIES:
        found.add("new_category", "err_category")
    pieces = product.unit in COUNT_UNITS
    net_quantity = net_unit = None
    if pieces:
        net_quantity = forms.number(form, found, "new_net_quantity", maximum=MAX_NET)
        net_unit = form.text("new_net_unit")
        if net_quantity is not None and net_unit not in NET_UNITS:
            found.add("new_net_unit", "err_net")
    elif form.text("new_net_quantity"):
        found.add("new_net_quantity", "err_net_only_pieces")
    for where, text in found.by_field.items():
        mistakes.by_field[f"{where}-{gtin}"] = text
    if mistakes:
        return None
    before = product.ledger_seq
    try:
        changed = product_changes.change_product(
            session=console.session,
            ledger=ledger,
            actor=console.actor,
            gtin=gtin,
            name=name,
            category=category,
            net_quantity=net_quantity,
            net_unit=net_unit if net_quantity is not None else None,
            clear_net_content=net_quantity is None,
        )
    except (Invalid, Conflict) as error:
        where = EDIT_FIELDS.get(str(error.extra.get("field")), "new_name")
        mistakes.by_field[f"{where}-{gtin}"] = error.detail
        return None
    if changed.ledger_seq == before:
        return Done(seqs=[], lines=[words(console.language)["product_unchanged"]])
    return Done(seqs=[changed.ledger_seq], lines=[f"{changed.name} · {changed.gtin}"])
