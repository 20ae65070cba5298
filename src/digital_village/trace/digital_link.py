"""Constrained canonical GS1 Digital Link URIs, as the CBV 2.0 event hash needs them.

CBV 2.0 §8.9 (EPCIS Event Hash ID) rules 17 and 18: EPC URIs (``urn:epc:id:...``, class and
pattern URIs) become canonical GS1 Digital Link URIs on ``https://id.gs1.org``; Digital Link
URIs on any other host move to that host, lose their query string and keep only the finest
identification level (a serial wins over a lot). Values that are neither stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from digital_village.labels.digital_link import gtin_check_digit

CANONICAL_HOST: Final = "https://id.gs1.org"

# GS1 AI encodable character set 82 without the characters Digital Link must percent-encode;
# the reference implementation refuses identifiers outside it, and so do we.
_CSET82 = r"[\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]"
_VALID: Final = tuple(
    re.compile(f"^{CANONICAL_HOST}/{pattern}$")
    for pattern in (
        r"00/\d{18}",
        rf"01/\d{{14}}(/21/{_CSET82}{{0,20}}|/10/{_CSET82}{{0,20}}|/235/{_CSET82}{{0,28}})?",
        rf"253/\d{{13}}{_CSET82}{{0,17}}",
        r"255/\d{13}\d{0,12}",
        rf"401/{_CSET82}{{0,30}}",
        r"402/\d{17}",
        rf"414/\d{{13}}(/254/{_CSET82}{{0,20}})?",
        r"417/\d{13}",
        rf"8003/\d{{14}}{_CSET82}{{0,16}}",
        rf"8004/{_CSET82}{{0,30}}",
        rf"8006/\d{{18}}(/21/{_CSET82}{{0,20}}|/10/{_CSET82}{{0,20}})?",
        r"8010/[\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30}(/8011/\d{0,12})?",
        r"8017/\d{18}",
        r"8018/\d{18}",
    )
)
_PRIMARY_KEYS: Final = [
    "00",
    "01",
    "253",
    "255",
    "401",
    "402",
    "414",
    "417",
    "8003",
    "8004",
    "8006",
    "8010",
    "8017",
    "8018",
]
_SHORT_NAMES: Final = {
    "gtin": "01", "itip": "8006", "cpid": "8010", "gln": "414", "party": "417",
    "gsrnp": "8017", "gsrn": "8018", "gcn": "255", "sscc": "00", "gdti": "253",
    "ginc": "401", "gsin": "402", "grai": "8003", "giai": "8004", "cpv": "22",
    "lot": "10", "ser": "21",
}  # fmt: skip
_KEY_SEGMENT = "|".join(
    _PRIMARY_KEYS + [name for name in _SHORT_NAMES if name not in {"cpv", "lot", "ser"}]
)
_DIGITAL_LINK: Final = re.compile(rf"^https?://[^/?#]*(/[^?#]*)?/({_KEY_SEGMENT})/\d{{4}}")
_CANONICAL: Final = re.compile(rf"^{CANONICAL_HOST}/({'|'.join(_PRIMARY_KEYS)})/\d{{4}}")


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit of a digit string (weights 3,1,3,... from the right).

    The one implementation is :func:`digital_village.labels.digital_link.gtin_check_digit`,
    which takes a GTIN payload of up to 13 digits. The weights depend only on a digit's
    position from the right, so a shorter key is zero-padded, and a longer one (SSCC, GSRN:
    17 digits) is summed in two pieces: the 13 digits on the right, and the rest shifted one
    place left of a padding zero (position 13 has the parity of position 1).
    """
    right, left = digits[-13:], digits[:-13]
    digit = int(gtin_check_digit(right.zfill(13)))
    if left:
        digit += int(gtin_check_digit((left + "0").zfill(13)))
    return str(digit % 10)


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
    for name, key in _SHORT_NAMES.items():
        uri = uri.replace(f"/{name}/", f"/{key}/")
    if _CANONICAL.match(uri) is None:
        for key in _PRIMARY_KEYS:
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
