"""What the chain's entries record of its rows: products, lots and their totals, harvested
parcels and their holders, certificates.

A row the pages show is bound to an entry field by field: each *binding* pairs an RFC 6901
JSON pointer into the entry with the row's value for it. The same bindings make a page's
claims (web/facts.py: the browser compares each shown value with the proven entry) and the
audit's comparisons (trace/audit.py: the first row that differs is named), so the two can
never disagree about what a field means.

Entries of each kind, from the version that records them:

- ``trace.product.registered`` and ``trace.product.changed`` (``product.ledger_seq``, the
  newest entry of the chain ``product:<GTIN-14>``): gtin, name, category, unit, netContent,
  cooperative (统一社会信用代码) — a change records all of the product's facts again, so the
  newest entry of its chain alone states the product;
- ``trace.certificate.issued`` (``certificate.ledger_seq``): number, gtin, lot, product,
  quantity, unit, origin, issuedOn, issuer, contactCommitment (``contact_commitment``: the
  issuer's phone number salted and hashed, so the public entry holds no phone number; entries
  issued before record ``contact`` itself), basis, commitments;
- ``trace.epcis_event``: ``data.event`` the EPCIS event; ``data.effects.lots["<gtin>/<lot>"]``
  the totals of every lot the event changed as they stand after it (``produced``,
  ``consumed``; ``origin`` and ``producedAt`` when the event made the lot);
  ``data.effects.parcels[<dkbm>]`` for a harvest: the lot, the holders by code (承包方编码,
  cooperative 统一社会信用代码) and the 亩 counted; ``data.effects.units["<gtin>/<serial>"]``
  the lot of each serialised item the event commissioned (``effects`` is ``{}`` for an event
  that changes no row). An item's later status (consumed, decommissioned, voided) is not
  recorded. Events captured before ``effects`` was recorded carry none: their lots' totals,
  harvests and items cannot be checked against the ledger.

Pure: no database, no web.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from digital_village.jsonpointer import MISSING, pointer, resolve
from digital_village.ledger.stored import UNREADABLE, Unreadable

EVENT_KIND: Final = "trace.epcis_event"
PRODUCT_KIND: Final = "trace.product.registered"
PRODUCT_CHANGED_KIND: Final = "trace.product.changed"
# The entries a product row may rest on: its registration, or (the newest) change.
PRODUCT_KINDS: Final = frozenset({PRODUCT_KIND, PRODUCT_CHANGED_KIND})
CERTIFICATE_KIND: Final = "trace.certificate.issued"

Binding = tuple[str, Callable[[Any], Any]]
"""(JSON pointer into the entry, the row's value for it)."""


def lot_key(gtin: str, lot: str) -> str:
    """How entries name a lot: ``<GTIN-14>/<lot>`` (as in its chain key ``lot:…``)."""
    return f"{gtin}/{lot}"


def product_chain(gtin: str) -> str:
    """The chain of a product's entries: ``product:<GTIN-14>``."""
    return f"product:{gtin}"


def unit_key(gtin: str, serial: str) -> str:
    """How entries name a serialised item: ``<GTIN-14>/<serial>``."""
    return f"{gtin}/{serial}"


def unit_lot(gtin: str, serial: str) -> str:
    """Where the entry of the event that commissioned an item records its lot."""
    return pointer("data", "effects", "units", unit_key(gtin, serial))


def utc_text(moment: dt.datetime) -> str:
    """An instant as entries record it: UTC, microseconds, ``Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def claims(bindings: Sequence[Binding], row: Any) -> dict[str, Any]:
    """The values a page shows of ``row``, by where its entry records each."""
    return {path: value_of(row) for path, value_of in bindings}


def differences(
    bindings: Sequence[Binding], row: Any, entry: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """(pointer, the row's value, the entry's) wherever ``row`` and its parsed entry disagree,
    in binding order; a value the entry lacks is reported as ``MISSING``."""
    found: list[tuple[str, Any, Any]] = []
    for path, value_of in bindings:
        present, recorded = resolve(entry, path)
        try:
            shown = value_of(row)
        except (TypeError, ValueError, AttributeError):
            shown = UNREADABLE
        if not present:
            found.append((path, shown, MISSING))
        elif not _same(recorded, shown):
            found.append((path, shown, recorded))
    return found


def _same(recorded: Any, shown: Any) -> bool:
    """JSON equality: what a browser comparing the two parsed values would conclude."""
    if isinstance(shown, Unreadable):
        return False
    if isinstance(recorded, bool) or isinstance(shown, bool):
        return recorded is shown
    if isinstance(recorded, int | float) and isinstance(shown, int | float):
        return float(recorded) == float(shown)
    if isinstance(recorded, list) and isinstance(shown, list | tuple):
        return len(recorded) == len(shown) and all(
            _same(a, b) for a, b in zip(recorded, shown, strict=True)
        )
    if isinstance(recorded, dict) and isinstance(shown, dict):
        return recorded.keys() == shown.keys() and all(_same(recorded[k], shown[k]) for k in shown)
    return type(recorded) is type(shown) and recorded == shown


def _codes(text: Any) -> list[str]:
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError("not a list of codes")
    return value


# --- products ---------------------------------------------------------------------------------

# A product row with its cooperative's 统一社会信用代码 as ``uscc`` (pages and the audit read
# both in one query).
PRODUCT_NAME: Final[Binding] = ("/data/name", lambda p: p.name)
PRODUCT_GTIN: Final[Binding] = ("/data/gtin", lambda p: p.gtin)
PRODUCT_COOPERATIVE: Final[Binding] = ("/data/cooperative", lambda p: p.uscc)
PRODUCT: Final[tuple[Binding, ...]] = (
    PRODUCT_GTIN,
    PRODUCT_NAME,
    ("/data/category", lambda p: p.category),
    ("/data/unit", lambda p: p.unit),
    (
        "/data/netContent",
        lambda p: (
            None
            if p.net_quantity is None and p.net_unit is None
            else {"value": p.net_quantity, "unit": p.net_unit}
        ),
    ),
    PRODUCT_COOPERATIVE,
)


def product_data(
    *,
    gtin: str,
    name: str,
    category: str,
    unit: str,
    net_quantity: float | None,
    net_unit: str | None,
    uscc: str,
) -> dict[str, Any]:
    """What a product's entries record (its registration and each change): all its facts."""
    return {
        "gtin": gtin,
        "name": name,
        "category": category,
        "unit": unit,
        "netContent": None if net_quantity is None else {"value": net_quantity, "unit": net_unit},
        "cooperative": uscc,
    }


# --- certificates -----------------------------------------------------------------------------


def contact_commitment(salt: str, contact: str) -> str:
    """What a certificate's public entry records of its contact: SHA-256 over the row's random
    salt and the phone number. Without the salt (kept in the row, never published) the entry
    cannot be matched against a list of phone numbers."""
    return hashlib.sha256(f"{salt}\n{contact}".encode()).hexdigest()


def _commitment(c: Any) -> str:
    if not isinstance(c.contact_salt, str) or not isinstance(c.contact, str):
        raise ValueError("the certificate row has no contact salt")
    return contact_commitment(c.contact_salt, c.contact)


# A certificate row with its lot's ``gtin`` and ``lot``.
_CERTIFICATE_FIELDS: Final[tuple[Binding, ...]] = (
    ("/data/number", lambda c: c.number),
    ("/data/gtin", lambda c: c.gtin),
    ("/data/lot", lambda c: c.lot),
    ("/data/product", lambda c: c.product_name),
    ("/data/quantity", lambda c: c.quantity),
    ("/data/unit", lambda c: c.unit),
    ("/data/origin", lambda c: c.origin),
    ("/data/issuedOn", lambda c: c.issued_on.isoformat()),
    ("/data/issuer", lambda c: c.issuer),
    ("/data/basis", lambda c: _codes(c.basis)),
    ("/data/commitments", lambda c: _codes(c.commitments)),
)
CERTIFICATE: Final[tuple[Binding, ...]] = (
    *_CERTIFICATE_FIELDS,
    ("/data/contactCommitment", _commitment),
)
# Certificates issued while the entry recorded the contact itself (their row has no salt).
CERTIFICATE_WITH_CONTACT: Final[tuple[Binding, ...]] = (
    *_CERTIFICATE_FIELDS,
    ("/data/contact", lambda c: c.contact),
)
# What the certificate on a page shows (no contact: a phone number stays off public pages).
CERTIFICATE_SHOWN: Final = dict(_CERTIFICATE_FIELDS)


def certificate_bindings(row: Any) -> tuple[Binding, ...]:
    """The bindings of a certificate row: by commitment, or (issued earlier) by contact."""
    return CERTIFICATE_WITH_CONTACT if row.contact_salt is None else CERTIFICATE


# --- lots ---------------------------------------------------------------------------------------


def lot_produced(gtin: str, lot: str) -> str:
    return pointer("data", "effects", "lots", lot_key(gtin, lot), "produced")


def lot_bindings(gtin: str, lot: str, *, made_here: bool) -> tuple[Binding, ...]:
    """A lot row's totals in the entry of the last event that changed them; its origin and
    when it was made in the entry of the event that made it (``made_here``)."""
    base = ("data", "effects", "lots", lot_key(gtin, lot))
    found: list[Binding] = [
        (pointer(*base, "produced"), lambda lot_row: lot_row.produced),
        (pointer(*base, "consumed"), lambda lot_row: lot_row.consumed),
    ]
    if made_here:
        found += [
            (pointer(*base, "origin"), lambda lot_row: lot_row.origin),
            (pointer(*base, "producedAt"), lambda lot_row: utc_text(lot_row.produced_at)),
        ]
    return tuple(found)


def harvest_bindings(dkbm: str) -> tuple[Binding, ...]:
    """A harvest's lot-parcel row (with ``lot_key``, ``contractor`` and ``operator`` codes)."""
    base = ("data", "effects", "parcels", dkbm)
    return (
        (pointer(*base, "lot"), lambda row: row.lot_key),
        (pointer(*base, "contractor"), lambda row: row.contractor),
        (pointer(*base, "operator"), lambda row: row.operator),
        (pointer(*base, "area_mu"), lambda row: row.area_mu),
    )


def records_effects(data: Mapping[str, Any]) -> bool:
    """Whether an event entry records its effects at all (events captured before did not)."""
    return "effects" in data
