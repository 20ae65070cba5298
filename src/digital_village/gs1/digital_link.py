"""GS1 Digital Link URIs of trade items: parse, validate and build (docs/DESIGN.md §7).

A label's QR code carries ``https://<resolver>/01/<GTIN-14>[/10/<lot>][/21/<serial>]`` with
optional query attributes: 11 production date, 17 expiry date, 7007 harvest date (or range) and
422 country of origin. The syntax follows the GS1 Digital Link URI grammar
(gs1/digital-link.js, ``grammar/GS1_Digital_Link_Grammar_1_2.abnf``); the value format of each
AI follows the GS1 Barcode Syntax Dictionary (gs1/gs1-syntax-dictionary).

Decisions, so that one product has one spelling:

* Only GTIN (AI 01) is a primary key here, and only lot (10) and serial (21) its qualifiers, in
  that order; 21 without 10 is allowed. Other GS1 keys and qualifiers (SSCC, CPV 22, ...) are
  refused with a message rather than half-supported.
* The numeric form is canonical. The convenience alphas of Digital Link 1.0/1.1 (``gtin``,
  ``lot``, ``ser`` in the path and ``exp`` in the query) are accepted when parsing, because labels
  printed by other tools carry them, and never emitted.
* Canonical form: GTIN-14, path in the order 01/10/21, GS1 query attributes sorted by AI,
  percent-encoding re-done (everything but ``A-Z a-z 0-9 - . _`` encoded, upper-case hex), the
  scheme and host lower-cased, non-GS1 query parameters dropped.
* Non-GS1 query parameters (``linkType``, ``context``, ...) are kept in ``extra_params`` for the
  resolver but are not part of the link's identity, and neither is the resolver base URL: two
  links naming the same item on different hosts compare equal.
* Every all-digit query key is read as a GS1 AI; one this module does not support is an error,
  not a silently dropped attribute.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, unquote, urlsplit

from digital_village.gs1.keys import (
    GS1_SET_82,
    PRIMARY_KEYS,
    SHORT_NAMES,
    DigitalLinkError,
    is_digits,
    validate_gtin,
)

__all__ = [
    "ATTRIBUTE_AIS",
    "DigitalLink",
    "DigitalLinkError",
    "canonicalize_digital_link",
    "parse_digital_link",
]


QUALIFIER_MAX_LENGTH = 20

# Query attributes this project puts on labels, in canonical (lexical) order.
ATTRIBUTE_AIS = ("11", "17", "422", "7007")

_AI_NAMES = {
    "00": "SSCC",
    "01": "GTIN",
    "10": "lot",
    "11": "production date",
    "17": "expiry date",
    "21": "serial",
    "22": "consumer product variant",
    "235": "third-party serial",
    "422": "country of origin",
    "7007": "harvest date",
}

# Every Digital Link primary key is recognised, if only to be refused with a clear message.
_PRIMARY_KEYS = frozenset(PRIMARY_KEYS)
_GTIN_QUALIFIERS = ("10", "21")
_UNSUPPORTED_GTIN_QUALIFIERS = frozenset({"22", "235"})
# Only the short names of a GTIN's path are read as AIs; another key's short name (``gln``,
# ``sscc``, ...) is left to the resolver's path prefix, as it always was here.
_PATH_ALIASES = {
    name: ai for name, ai in SHORT_NAMES.items() if ai in ("01", *_GTIN_QUALIFIERS, "22")
}
_QUERY_ALIASES = {"exp": "17"}

# ISO 3166-1 num-3 country codes, as listed by the syntax dictionary's iso3166 linter.
_ISO_3166_NUMERIC_TEXT = (
    "004 008 010 012 016 020 024 028 031 032 036 040 044 048 050 051 052 056 060 064 068 070 "
    "072 074 076 084 086 090 092 096 100 104 108 112 116 120 124 132 136 140 144 148 152 156 "
    "158 162 166 170 174 175 178 180 184 188 191 192 196 203 204 208 212 214 218 222 226 231 "
    "232 233 234 238 239 242 246 248 250 254 258 260 262 266 268 270 275 276 288 292 296 300 "
    "304 308 312 316 320 324 328 332 334 336 340 344 348 352 356 360 364 368 372 376 380 384 "
    "388 392 398 400 404 408 410 414 417 418 422 426 428 430 434 438 440 442 446 450 454 458 "
    "462 466 470 474 478 480 484 492 496 498 499 500 504 508 512 516 520 524 528 531 533 534 "
    "535 540 548 554 558 562 566 570 574 578 580 581 583 584 585 586 591 598 600 604 608 612 "
    "616 620 624 626 630 634 638 642 643 646 652 654 659 660 662 663 666 670 674 678 682 686 "
    "688 690 694 702 703 704 705 706 710 716 724 728 729 732 740 744 748 752 756 760 762 764 "
    "768 772 776 780 784 788 792 795 796 798 800 804 807 818 826 831 832 833 834 840 850 854 "
    "858 860 862 876 882 887 894"
)
_ISO_3166_NUMERIC = frozenset(_ISO_3166_NUMERIC_TEXT.split())

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HARVEST_RANGE = re.compile(r"([0-9]{6})-([0-9]{6})")


def _ai_label(ai: str) -> str:
    name = _AI_NAMES.get(ai)
    return f"AI {ai} ({name})" if name else f"AI {ai}"


def _check_qualifier(ai: str, value: str) -> str:
    label = _ai_label(ai)
    if not 1 <= len(value) <= QUALIFIER_MAX_LENGTH:
        raise DigitalLinkError(
            f"{label} must be 1 to {QUALIFIER_MAX_LENGTH} characters, got {len(value)}"
        )
    for char in value:
        if char not in GS1_SET_82:
            raise DigitalLinkError(f"{label} has a character outside GS1 set 82: {char!r}")
    return value


def _check_date(ai: str, value: str, *, zero_day_allowed: bool) -> None:
    label = _ai_label(ai)
    if len(value) != 6 or not is_digits(value):
        raise DigitalLinkError(f"{label} must be a YYMMDD date, got {value!r}")
    year, month, day = int(value[:2]), int(value[2:4]), int(value[4:])
    if not 1 <= month <= 12:
        raise DigitalLinkError(f"{label} has invalid month {value[2:4]} in {value!r}")
    if day == 0:
        if not zero_day_allowed:
            raise DigitalLinkError(f"{label} does not allow day 00 in {value!r}")
        return
    # The GS1 sliding century window (General Specifications §7.12) only matters for leap
    # years at 2100 and 1900; every year 2000-2099 is a leap year iff YY % 4 == 0.
    days_in_month = calendar.monthrange(2000 + year, month)[1]
    if day > days_in_month:
        raise DigitalLinkError(f"{label} has invalid day {value[4:]} in {value!r}")


def _normalise_attribute(ai: str, value: str) -> str:
    if ai in ("11", "17"):
        # Syntax dictionary: 11 and 17 are "N6,yymmd0" - DD 00 means "end of the month".
        _check_date(ai, value, zero_day_allowed=True)
        return value
    if ai == "7007":
        # Syntax dictionary: "N6,yymmdd [N6],yymmdd", a date or a start and end date written
        # back to back; the hyphenated form is accepted as input only.
        hyphenated = _HARVEST_RANGE.fullmatch(value)
        if hyphenated:
            value = hyphenated.group(1) + hyphenated.group(2)
        if len(value) not in (6, 12):
            raise DigitalLinkError(
                f"{_ai_label(ai)} must be YYMMDD or YYMMDD-YYMMDD, got {value!r}"
            )
        _check_date(ai, value[:6], zero_day_allowed=False)
        if len(value) == 12:
            _check_date(ai, value[6:], zero_day_allowed=False)
            # Same-century comparison; a range across 1999/2000 is not a harvest we label.
            if value[6:] < value[:6]:
                raise DigitalLinkError(
                    f"{_ai_label(ai)} range ends before it starts: {value[:6]}-{value[6:]}"
                )
        return value
    if ai == "422":
        if len(value) != 3 or not is_digits(value):
            raise DigitalLinkError(f"{_ai_label(ai)} must be 3 digits, got {value!r}")
        if value not in _ISO_3166_NUMERIC:
            raise DigitalLinkError(
                f"{_ai_label(ai)} {value!r} is not an ISO 3166-1 numeric country code"
            )
        return value
    if ai in _GTIN_QUALIFIERS or ai in _UNSUPPORTED_GTIN_QUALIFIERS:
        raise DigitalLinkError(f"{_ai_label(ai)} belongs in the path after 01, not the query")
    raise DigitalLinkError(
        f"{_ai_label(ai)} is not supported as a query attribute "
        f"(supported: {', '.join(ATTRIBUTE_AIS)})"
    )


def _normalise_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DigitalLinkError(f"base URL must be http or https, got {base_url!r}")
    if not parts.netloc:
        raise DigitalLinkError(f"base URL has no host: {base_url!r}")
    if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise DigitalLinkError(f"base URL must not have a query or fragment: {base_url!r}")
    return f"{scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _encode(value: str) -> str:
    # safe="" so that '/' and the sub-delimiters are encoded too, as the grammar requires.
    return quote(value, safe="")


def _decode(value: str, where: str) -> str:
    if _BAD_PERCENT.search(value):
        raise DigitalLinkError(f"malformed percent-encoding in {where}: {value!r}")
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise DigitalLinkError(f"percent-encoding in {where} is not UTF-8: {value!r}") from None


@dataclass(frozen=True)
class DigitalLink:
    """A GTIN with optional lot, serial and query attributes, as carried in a Digital Link.

    Construction validates and normalises: ``gtin`` becomes a GTIN-14 and ``attributes`` a
    read-only mapping sorted by AI. ``base_url`` (``scheme://host[/prefix]``) and
    ``extra_params`` (non-GS1 query parameters) are carried along but excluded from equality.
    """

    gtin: str
    lot: str | None = None
    serial: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    base_url: str | None = field(default=None, compare=False)
    extra_params: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", validate_gtin(self.gtin))
        if self.lot is not None:
            _check_qualifier("10", self.lot)
        if self.serial is not None:
            _check_qualifier("21", self.serial)
        normalised = {ai: _normalise_attribute(ai, value) for ai, value in self.attributes.items()}
        object.__setattr__(self, "attributes", MappingProxyType(dict(sorted(normalised.items()))))
        if self.base_url is not None:
            object.__setattr__(self, "base_url", _normalise_base_url(self.base_url))
        extra = tuple((str(key), str(value)) for key, value in self.extra_params)
        for key, _ in extra:
            if is_digits(key) or key in _QUERY_ALIASES:
                raise DigitalLinkError(f"extra parameter {key!r} is a GS1 AI; use attributes")
        object.__setattr__(self, "extra_params", extra)

    def __hash__(self) -> int:
        return hash((self.gtin, self.lot, self.serial, tuple(self.attributes.items())))

    @property
    def path(self) -> str:
        """The canonical path: ``/01/<GTIN-14>[/10/<lot>][/21/<serial>]``."""
        path = f"/01/{self.gtin}"
        if self.lot is not None:
            path += f"/10/{_encode(self.lot)}"
        if self.serial is not None:
            path += f"/21/{_encode(self.serial)}"
        return path

    @property
    def query(self) -> str:
        """The canonical query string without ``?``: GS1 attributes sorted by AI, or ``""``."""
        # Attribute values are digits only, so they never need percent-encoding.
        return "&".join(f"{ai}={value}" for ai, value in self.attributes.items())

    def uri(self, base_url: str | None = None) -> str:
        """Return the canonical URI on ``base_url``, or on the base URL the link was parsed from."""
        base = _normalise_base_url(base_url) if base_url is not None else self.base_url
        if base is None:
            raise DigitalLinkError("no base URL: pass base_url, e.g. 'https://id.example.org'")
        query = self.query
        return f"{base}{self.path}?{query}" if query else f"{base}{self.path}"


def _find_primary_key(segments: list[str], path: str) -> int:
    # The GS1 part is a run of key/value pairs at the end of the path, after an optional
    # resolver prefix, so a primary key sits an even number of segments from the end. Taking
    # the right-most such key lets a prefix contain anything.
    candidates = [
        index
        for index, segment in enumerate(segments)
        if _PATH_ALIASES.get(segment, segment) in _PRIMARY_KEYS
    ]
    paired = [index for index in candidates if (len(segments) - index) % 2 == 0]
    if paired:
        return paired[-1]
    if candidates:
        raise DigitalLinkError(
            f"path after AI {segments[candidates[-1]]} must be key/value pairs, "
            f"got an odd number of segments in {path!r}"
        )
    found = segments[-2] if len(segments) >= 2 else segments[0]
    raise DigitalLinkError(f"unknown primary key {found!r} in path {path!r}: expected /01/<GTIN>")


def _parse_path(segments: list[str], path: str) -> tuple[str, str | None, str | None]:
    pairs = list(zip(segments[0::2], segments[1::2], strict=True))
    key, gtin_value = pairs[0]
    primary = _PATH_ALIASES.get(key, key)
    if primary != "01":
        raise DigitalLinkError(
            f"primary key {_ai_label(primary)} is not supported; only AI 01 (GTIN)"
        )
    gtin = validate_gtin(gtin_value)
    values: dict[str, str] = {}
    for code, raw_value in pairs[1:]:
        ai = _PATH_ALIASES.get(code, code)
        if ai in _PRIMARY_KEYS:
            raise DigitalLinkError(f"a Digital Link has one primary key; found {_ai_label(ai)} too")
        if ai in _UNSUPPORTED_GTIN_QUALIFIERS:
            raise DigitalLinkError(f"{_ai_label(ai)} is not supported as a qualifier of 01")
        if ai not in _GTIN_QUALIFIERS:
            raise DigitalLinkError(
                f"{_ai_label(ai)} is not a key qualifier of 01 (expected 10 or 21) in {path!r}"
            )
        if ai in values:
            raise DigitalLinkError(f"{_ai_label(ai)} appears twice in {path!r}")
        if ai == "10" and "21" in values:
            raise DigitalLinkError(f"AI 10 (lot) must come before AI 21 (serial) in {path!r}")
        values[ai] = _check_qualifier(ai, _decode(raw_value, _ai_label(ai)))
    return gtin, values.get("10"), values.get("21")


def _parse_query(query: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    attributes: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        raw_key, _, raw_value = piece.partition("=")
        key = _decode(raw_key, "query key")
        value = _decode(raw_value, f"query parameter {key!r}")
        ai = _QUERY_ALIASES.get(key, key)
        if is_digits(ai):
            if ai in attributes:
                raise DigitalLinkError(f"{_ai_label(ai)} appears twice in the query")
            attributes[ai] = value
        else:
            extra.append((key, value))
    return attributes, extra


# Controls, space, DEL and anything beyond ASCII: a URI carries these percent-encoded.
_UNENCODED = re.compile(r"[^\x21-\x7e]")


def parse_digital_link(uri: str) -> DigitalLink:
    """Parse a GS1 Digital Link URI for a GTIN; raise DigitalLinkError naming what is wrong."""
    # urlsplit silently drops tabs and newlines and strips spaces, which would change a lot.
    unencoded = _UNENCODED.search(uri)
    if unencoded is not None:
        raise DigitalLinkError(
            f"URI contains a character that must be percent-encoded: {unencoded.group()!r}"
        )
    try:
        parts = urlsplit(uri)
    except ValueError as error:
        raise DigitalLinkError(f"not a URI: {uri!r} ({error})") from None
    if not parts.scheme:
        raise DigitalLinkError(f"expected an http or https URI, got {uri!r}")
    if parts.scheme.lower() not in ("http", "https"):
        raise DigitalLinkError(f"expected an http or https URI, got scheme {parts.scheme!r}")
    if not parts.netloc:
        raise DigitalLinkError(f"URI has no host: {uri!r}")
    if "#" in uri:
        # '#' is outside GS1 set 82; a raw one would silently cut a lot or serial short.
        raise DigitalLinkError(f"unexpected fragment {'#' + parts.fragment!r} in {uri!r}")
    if not parts.path.strip("/"):
        raise DigitalLinkError(f"URI has no path: expected /01/<GTIN> in {uri!r}")
    segments = parts.path[1:].split("/")
    if "" in segments:
        raise DigitalLinkError(f"empty path segment (double or trailing '/') in {parts.path!r}")
    start = _find_primary_key(segments, parts.path)
    if start >= 2:
        # A GS1 key or qualifier just before the key means a malformed GS1 path, not a prefix.
        before = _PATH_ALIASES.get(segments[start - 2], segments[start - 2])
        if before in _GTIN_QUALIFIERS:
            raise DigitalLinkError(
                f"{_ai_label(before)} must follow the primary key 01 in {parts.path!r}"
            )
        if before in _PRIMARY_KEYS:
            raise DigitalLinkError(
                f"a Digital Link has one primary key; found {_ai_label(before)} before "
                f"{_ai_label(_PATH_ALIASES.get(segments[start], segments[start]))} "
                f"in {parts.path!r}"
            )
    gtin, lot, serial = _parse_path(segments[start:], parts.path)
    attributes, extra = _parse_query(parts.query)
    prefix = "/".join(segments[:start])
    base_url = f"{parts.scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    return DigitalLink(
        gtin=gtin,
        lot=lot,
        serial=serial,
        attributes=attributes,
        base_url=base_url,
        extra_params=tuple(extra),
    )


def canonicalize_digital_link(uri: str) -> str:
    """Return the canonical form of a Digital Link URI, on the same resolver base URL."""
    return parse_digital_link(uri).uri()
