"""Which identifiers in an EPCIS event name the project's things: GTIN items, lots, parcels.

Pure: no ORM, no web. GS1 identifiers arrive as Digital Link URIs on any host or as EPC URNs
(``urn:epc:class:lgtin:...``, ``urn:epc:id:sgtin:...``); both are read as GTIN-14 + lot +
serial, with the GTIN check digit validated by :mod:`digital_village.gs1.keys`.
Whether a GTIN is the project's own is for the caller to decide (a registered product).

Parcels are named by the URI ``<public base URL>/p/<DKBM>`` (docs/DESIGN.md §6) in readPoint,
bizLocation or parentID, or by the project's extension fields ``dv:parcel`` / ``dv:parcels``
(a URI or a bare DKBM). A ``/p/`` URI on another host is someone else's identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from digital_village.gs1 import canonical
from digital_village.gs1.digital_link import DigitalLink, parse_digital_link
from digital_village.gs1.keys import DigitalLinkError, validate_gtin
from digital_village.parcels.codes import CodeError, parse_dkbm

PARCEL_EXTENSIONS: Final = ("dv:parcel", "dv:parcels")

_GTIN_LINK = re.compile(r"^https?://[^/?#]+(?:/[^?#]*)?/(?:01|gtin)/([^/?#]*)(?:[/?#]|$)")
_GTIN_URN = re.compile(r"^urn:epc:(?:id:sgtin|class:lgtin|idpat:sgtin):")
_PARCEL_PATH = re.compile(r"/p/([^/?#]+)$")

# UN/ECE Rec 20 codes the chain converts between, with their factor to the group's base unit.
_UNITS: Final[dict[str, tuple[str, float]]] = {
    "KGM": ("mass", 1.0),
    "TNE": ("mass", 1000.0),
    "GRM": ("mass", 0.001),
    "LTR": ("volume", 1.0),
    "MLT": ("volume", 0.001),
    "MTQ": ("volume", 1000.0),
    "H87": ("count", 1.0),
    "EA": ("count", 1.0),
}
COUNT_UNITS: Final = frozenset({"H87", "EA"})


class IdentifierError(ValueError):
    """An identifier that claims to be a GTIN or parcel code but is malformed."""


@dataclass(frozen=True, slots=True)
class GtinItem:
    """A GTIN-based identifier: a product class, a lot (AI 10) or a serialised item (AI 21)."""

    gtin: str
    lot: str | None = None
    serial: str | None = None


@lru_cache(maxsize=65536)
def parse_gtin_identifier(uri: str) -> GtinItem | None:
    """Read a GTIN Digital Link or EPC URN; None for any other identifier.

    Raises IdentifierError naming the fault when the URI is a GTIN identifier that is wrong
    (a check digit, a lot with characters GS1 does not allow, a malformed EPC URN).
    """
    if uri.startswith("urn:epc:"):
        if not _GTIN_URN.match(uri):
            return None
        constrained = canonical.normalise(uri)
        if constrained is None:
            raise IdentifierError(f"{uri!r} is not a well-formed GS1 EPC URI")
        return _from_link(constrained, uri)
    match = _GTIN_LINK.match(uri)
    if match is None:
        return None
    try:
        validate_gtin(match.group(1))
    except DigitalLinkError as error:
        raise IdentifierError(f"{uri!r}: {error}") from None
    return _from_link(uri, uri)


def _from_link(link: str, original: str) -> GtinItem:
    try:
        parsed = parse_digital_link(link)
    except DigitalLinkError as error:
        # A qualifier the label module does not print (22, 235) is still a valid identifier:
        # its constrained canonical form keeps what identifies the item.
        constrained = canonical.normalise(link)
        if constrained is None:
            raise IdentifierError(
                f"{original!r} is not a valid GS1 Digital Link: {error}"
            ) from None
        gtin = constrained.split("/")[4]
        return GtinItem(gtin=gtin)
    return GtinItem(gtin=parsed.gtin, lot=parsed.lot, serial=parsed.serial)


def canonical_epc(uri: str) -> str:
    """The form an identifier is indexed and matched under: GS1 keys on id.gs1.org, else as is."""
    return canonical.normalise(uri) or uri


def lot_uri(base_url: str, gtin: str, lot: str) -> str:
    """The Digital Link URI of a lot on the project's resolver."""
    return DigitalLink(gtin, lot=lot).uri(base_url)


def serial_uri(base_url: str, gtin: str, serial: str, lot: str | None = None) -> str:
    """The Digital Link URI of a serialised item (with its lot, as printed on labels)."""
    return DigitalLink(gtin, lot=lot, serial=serial).uri(base_url)


def parcel_uri(base_url: str, dkbm: str) -> str:
    """The URI that names a parcel in events and on its field sign."""
    return f"{base_url.rstrip('/')}/p/{dkbm}"


def _checked_dkbm(code: str, where: str) -> str:
    try:
        return parse_dkbm(code).code
    except CodeError as error:
        raise IdentifierError(f"{where}: {error}") from None


@lru_cache(maxsize=65536)
def parcel_of_uri(uri: str, *, base_url: str) -> str | None:
    """The DKBM of a parcel URI on the project's host, else None."""
    prefix = f"{base_url.rstrip('/')}/p/"
    if not uri.startswith(prefix):
        return None
    return _checked_dkbm(uri[len(prefix) :], f"parcel URI {uri!r}")


def parcel_of_extension(value: object) -> str:
    """The DKBM named by a ``dv:parcel`` value: a bare DKBM or any URI ending in /p/<DKBM>."""
    if not isinstance(value, str):
        raise IdentifierError("a parcel is written as a URI ending in /p/<DKBM> or a bare DKBM")
    return _parcel_of_text(value.strip())


@lru_cache(maxsize=65536)
def _parcel_of_text(text: str) -> str:
    match = _PARCEL_PATH.search(text)
    code = match.group(1) if match else text
    return _checked_dkbm(code, f"parcel {text!r}")


# The unit each kind of quantity is bounded in (Settings.max_quantity).
BASE_UNITS: Final[dict[str, str]] = {"mass": "KGM", "volume": "LTR", "count": "H87"}


def in_base_unit(quantity: float, unit: str) -> tuple[float, str]:
    """A quantity in its kind's base unit (KGM, LTR, H87); a unit the chain does not convert
    between stays as it is."""
    kind = _UNITS.get(unit)
    if kind is None:
        return quantity, unit
    return quantity * kind[1], BASE_UNITS[kind[0]]


def convert(quantity: float, unit: str, target: str) -> float | None:
    """A quantity in another unit of the same kind (kg ↔ t, L ↔ mL); None when not convertible."""
    source_kind = _UNITS.get(unit)
    target_kind = _UNITS.get(target)
    if unit == target:
        return quantity
    if source_kind is None or target_kind is None or source_kind[0] != target_kind[0]:
        return None
    return quantity * source_kind[1] / target_kind[1]
