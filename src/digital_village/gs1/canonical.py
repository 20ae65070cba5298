"""Constrained canonical GS1 Digital Link URIs, as the CBV 2.0 event hash needs them.

CBV 2.0 §8.9 (EPCIS Event Hash ID) rules 17 and 18: EPC URIs (``urn:epc:id:...``, class and
pattern URIs) become canonical GS1 Digital Link URIs on ``https://id.gs1.org``; Digital Link
URIs on any other host move to that host, lose their query string and keep only the finest
identification level (a serial wins over a lot). Values that are neither stay as they are.

The constrained form has a pattern for fourteen of the Digital Link primary keys
(:data:`digital_village.gs1.keys.PRIMARY_KEYS`); the GMN (8013) and the pay-to GLN (415) have
none, in CBV 2.0 as in its reference implementation, so a URI keyed by them stays as written
and two systems hashing the same event agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from digital_village.gs1.keys import PRIMARY_KEYS, SHORT_NAMES, check_digit

CANONICAL_HOST: Final = "https://id.gs1.org"

# GS1 AI encodable character set 82 without the characters Digital Link must percent-encode;
# the reference implementation refuses identifiers outside it, and so do we.
_CSET82 = r"[\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]"
_CONSTRAINED_PATTERNS: Final = {
    "00": r"00/\d{18}",
    "01": rf"01/\d{{14}}(/21/{_CSET82}{{0,20}}|/10/{_CSET82}{{0,20}}|/235/{_CSET82}{{0,28}})?",
    "253": rf"253/\d{{13}}{_CSET82}{{0,17}}",
    "255": r"255/\d{13}\d{0,12}",
    "401": rf"401/{_CSET82}{{0,30}}",
    "402": r"402/\d{17}",
    "414": rf"414/\d{{13}}(/254/{_CSET82}{{0,20}})?",
    "417": r"417/\d{13}",
    "8003": rf"8003/\d{{14}}{_CSET82}{{0,16}}",
    "8004": rf"8004/{_CSET82}{{0,30}}",
    "8006": rf"8006/\d{{18}}(/21/{_CSET82}{{0,20}}|/10/{_CSET82}{{0,20}})?",
    "8010": r"8010/[\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30}(/8011/\d{0,12})?",
    "8017": r"8017/\d{18}",
    "8018": r"8018/\d{18}",
}
_VALID: Final = tuple(
    re.compile(f"^{CANONICAL_HOST}/{pattern}$") for pattern in _CONSTRAINED_PATTERNS.values()
)
# The primary keys the constrained form covers, in numeric order (the order in which a key is
# looked for in a path, as the reference implementation does).
_CONSTRAINED_KEYS: Final = [key for key in PRIMARY_KEYS if key in _CONSTRAINED_PATTERNS]
_KEY_SEGMENT = "|".join(
    _CONSTRAINED_KEYS + [name for name, key in SHORT_NAMES.items() if key in _CONSTRAINED_PATTERNS]
)
_DIGITAL_LINK: Final = re.compile(rf"^https?://[^/?#]*(/[^?#]*)?/({_KEY_SEGMENT})/\d{{4}}")
_CANONICAL: Final = re.compile(rf"^{CANONICAL_HOST}/({'|'.join(_CONSTRAINED_KEYS)})/\d{{4}}")


def _with_check(digits: str) -> str:
    return digits + check_digit(digits)


def _encode(text: str) -> str:
    # Digital Link percent-encodes these characters that EPC URIs leave bare.
    for char, code in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A")):
        text = text.replace(char, code)
    for char, code in (("+", "%2B"), (",", "%2C"), (":", "%3A")):
        text = text.replace(char, code)
    return text


def _gtin(company: str, item: str) -> str:
    # The first digit of the item reference is the GTIN indicator digit.
    return _with_check(item[:1] + company + item[1:])


def _sgtin(company: str, item: str, serial: str) -> str:
    return f"01/{_gtin(company, item)}/21/{_encode(serial)}"


def _sgln(company: str, location: str, extension: str) -> str:
    gln = _with_check(company + location)
    return f"414/{gln}" if extension == "0" else f"414/{gln}/254/{_encode(extension)}"


# scheme -> (number of dot-separated parts, total digits of the numeric parts, converter)
_EPC_SCHEMES: Final[dict[str, tuple[int, int, Callable[..., str]]]] = {
    "id:sgtin": (3, 13, _sgtin),
    "id:sscc": (2, 17, lambda c, s: f"00/{_with_check(s[:1] + c + s[1:])}"),
    "id:sgln": (3, 12, _sgln),
    "id:grai": (3, 12, lambda c, a, s: f"8003/{_with_check('0' + c + a)}{_encode(s)}"),
    "id:giai": (2, 0, lambda c, a: f"8004/{c}{_encode(a)}"),
    "id:gsrn": (2, 17, lambda c, s: f"8018/{_with_check(c + s)}"),
    "id:gsrnp": (2, 17, lambda c, s: f"8017/{_with_check(c + s)}"),
    "id:gdti": (3, 12, lambda c, d, s: f"253/{_with_check(c + d)}{_encode(s)}"),
    "id:sgcn": (3, 12, lambda c, r, s: f"255/{_with_check(c + r)}{s}"),
    "id:ginc": (2, 0, lambda c, r: f"401/{c}{_encode(r)}"),
    "id:gsin": (2, 16, lambda c, r: f"402/{_with_check(c + r)}"),
    "id:pgln": (2, 12, lambda c, r: f"417/{_with_check(c + r)}"),
    "id:cpi": (3, 0, lambda c, r, s: f"8010/{_encode(c + r)}/8011/{s}"),
    "id:upui": (3, 13, lambda c, i, s: f"01/{_gtin(c, i)}/235/{_encode(s)}"),
    "id:itip": (5, 13, lambda c, i, p, t, s: f"8006/{_gtin(c, i)}{p}{t}/21/{_encode(s)}"),
    "class:lgtin": (3, 13, lambda c, i, lot: f"01/{_gtin(c, i)}/10/{_encode(lot)}"),
    "idpat:sgtin": (3, 13, lambda c, i, _: f"01/{_gtin(c, i)}"),
    "idpat:upui": (3, 13, lambda c, i, _: f"01/{_gtin(c, i)}"),
    "idpat:itip": (5, 13, lambda c, i, p, t, _: f"8006/{_gtin(c, i)}{p}{t}"),
    "idpat:grai": (3, 12, lambda c, a, _: f"8003/{_with_check('0' + c + a)}"),
    "idpat:gdti": (3, 12, lambda c, d, _: f"253/{_with_check(c + d)}"),
    "idpat:sgcn": (3, 12, lambda c, r, _: f"255/{_with_check(c + r)}"),
    "idpat:cpi": (3, 0, lambda c, r, _: f"8010/{_encode(c + r)}"),
}
_EPC_URI: Final = re.compile(r"^urn:epc:(id|class|idpat):([a-z]+):(\d{6,12})\.(.*)$")


def _from_epc_uri(uri: str) -> str | None:
    match = _EPC_URI.match(uri)
    if match is None:
        return None
    kind, scheme, company, rest = match.groups()
    entry = _EPC_SCHEMES.get(f"{kind}:{scheme}")
    if entry is None:
        return None
    part_count, digit_count, convert = entry
    parts = [company, *rest.split(".", part_count - 2)]
    if len(parts) != part_count:
        return None
    # A 12-digit company prefix leaves an empty reference ("urn:epc:id:pgln:999999999999.").
    reference = parts[1]
    if digit_count and (
        not (reference.isdigit() or reference == "") or len(company) + len(reference) != digit_count
    ):
        return None
    if kind == "idpat" and parts[-1] != "*":
        return None
    return f"{CANONICAL_HOST}/{convert(*parts)}"


def _remove_pair(uri: str, key: str) -> str:
    return re.sub(rf"/{key}/[^/]*", "", uri, count=1)


def _constrain_digital_link(uri: str) -> str | None:
    if _DIGITAL_LINK.match(uri) is None:
        return None
    uri = uri.split("?", 1)[0]
    for name, key in SHORT_NAMES.items():
        uri = uri.replace(f"/{name}/", f"/{key}/")
    if _CANONICAL.match(uri) is None:
        for key in _CONSTRAINED_KEYS:
            start = uri.find(f"/{key}/")
            if start != -1:
                uri = CANONICAL_HOST + uri[start:]
                break
    gtin = re.match(rf"^{CANONICAL_HOST}/01/(\d+)", uri)
    if gtin is not None and len(gtin.group(1)) in {8, 12, 13}:
        uri = uri.replace("/01/", "/01/" + "0" * (14 - len(gtin.group(1))), 1)
    if re.match(rf"^{CANONICAL_HOST}/(01|8006)/", uri):
        uri = _remove_pair(uri, "22")
        if "/21/" in uri:
            uri = _remove_pair(uri, "10")
    return uri if any(pattern.match(uri) for pattern in _VALID) else None


@lru_cache(maxsize=65536)
def normalise(uri: str) -> str | None:
    """Return the constrained canonical Digital Link URI for a GS1 identifier, else None."""
    if uri.startswith("urn:epc:"):
        return _from_epc_uri(uri)
    if uri.startswith(("http://", "https://")):
        return _constrain_digital_link(uri)
    return None
