"""GS1 Digital Link URIs: parse, validate and build (docs/DESIGN.md §7).

A label's QR code carries ``https://<resolver>/01/<GTIN-14>[/10/<lot>][/21/<serial>]`` with
optional query attributes (11 production date, 17 expiry date, 7007 harvest date, 422 country
of origin, ...). The syntax follows the GS1 Digital Link URI grammar (GS1 Digital Link: URI
Syntax 1.4, gs1/digital-link.js ``grammar/``); the value format of each AI follows the GS1
Barcode Syntax Dictionary (``gs1/ais.py``).

* :class:`DigitalLink` is a GTIN link — the key and its qualifiers 22 (consumer product
  variant), 10 (lot) and 21 (serial) in that order, or 235 (third-party serial) alone.
  :class:`KeyLink` is a link of any other primary key (SSCC 00, GLN 414 with 254 or 7040, party
  GLN 417, GRAI 8003, GIAI 8004, ITIP 8006 with 22/10/21, CPID 8010 with 8011, GSRN 8017/8018
  with 8019, GDTI 253, GCN 255, GINC 401, GSIN 402, GMN 8013, pay-to GLN 415 with 8020).
  :func:`parse_link` reads either; :func:`parse_digital_link` only a GTIN link.
* Every query-string key of digits is read as a GS1 AI and its value checked against the AI's
  format: any AI GS1 defines is accepted (the resolver passes on the ones it does not use); a
  number that is no AI, a malformed value, or a key qualifier in the query is an error.
* The numeric form is canonical. The convenience alphas of Digital Link 1.0/1.1 (``gtin``,
  ``lot``, ``ser``, ``sscc``, ``gln``, ... in the path and ``exp`` in the query) are accepted
  when parsing, because labels printed by other tools carry them, and never emitted.
* Canonical form: GTIN-14, path in the order of the key's qualifiers, GS1 query attributes
  sorted by AI, percent-encoding re-done (everything but ``A-Z a-z 0-9 - . _`` encoded,
  upper-case hex), the scheme and host lower-cased, non-GS1 query parameters dropped.
* Non-GS1 query parameters (``linkType``, ``context``, ...) are kept in ``extra_params`` for the
  resolver but are not part of the link's identity, and neither is the resolver base URL: two
  links naming the same item on different hosts compare equal.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, unquote, urlsplit

from digital_village.gs1 import ais
from digital_village.gs1.keys import (
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
    "KeyLink",
    "canonicalize_digital_link",
    "parse_digital_link",
    "parse_link",
]


QUALIFIER_MAX_LENGTH = 20

# Query attributes this project puts on labels, in canonical (lexical) order.
ATTRIBUTE_AIS = ("11", "17", "422", "7007")

_PRIMARY_KEYS = frozenset(PRIMARY_KEYS)
# A GTIN's qualifiers: 22, 10, 21 in that order, or 235 alone.
_GTIN_QUALIFIERS = ("22", "10", "21")
_GTIN_ALTERNATIVE = "235"
_PATH_ALIASES = dict(SHORT_NAMES)
_QUERY_ALIASES = {"exp": "17"}

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HARVEST_RANGE = re.compile(r"([0-9]{6})-([0-9]{6})")


def _ai_label(ai: str) -> str:
    return ais.ai_label(ai)


def _check_qualifier(ai: str, value: str) -> str:
    label = _ai_label(ai)
    if ai in ("10", "21") and not 1 <= len(value) <= QUALIFIER_MAX_LENGTH:
        raise DigitalLinkError(
            f"{label} must be 1 to {QUALIFIER_MAX_LENGTH} characters, got {len(value)}"
        )
    return ais.validate_value(ai, value)


def _qualifiers_of(key: str) -> frozenset[str]:
    found = ais.lookup(key)
    return found.qualifiers if found else frozenset()


def _normalise_attribute(ai: str, value: str) -> str:
    if ai == "7007":
        # "N6,yymmdd [N6],yymmdd": a date or a start and end date written back to back; the
        # hyphenated form is accepted as input only.
        hyphenated = _HARVEST_RANGE.fullmatch(value)
        if hyphenated:
            value = hyphenated.group(1) + hyphenated.group(2)
        if len(value) not in (6, 12):
            raise DigitalLinkError(
                f"{_ai_label(ai)} must be YYMMDD or YYMMDD-YYMMDD, got {value!r}"
            )
        ais.validate_value(ai, value)
        # Same-century comparison; a range across 1999/2000 is not a harvest we label.
        if len(value) == 12 and value[6:] < value[:6]:
            raise DigitalLinkError(
                f"{_ai_label(ai)} range ends before it starts: {value[:6]}-{value[6:]}"
            )
        return value
    if ai in _GTIN_QUALIFIERS or ai == _GTIN_ALTERNATIVE:
        raise DigitalLinkError(f"{_ai_label(ai)} belongs in the path after 01, not the query")
    if not ais.known(ai):
        raise DigitalLinkError(f"AI {ai} is not a GS1 Application Identifier")
    return ais.validate_value(ai, value)


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


def _encode_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{ai}={_encode(value)}" for ai, value in params.items())


def _base_and_extra(
    base_url: str | None, extra_params: tuple[tuple[str, str], ...]
) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    base = _normalise_base_url(base_url) if base_url is not None else None
    extra = tuple((str(key), str(value)) for key, value in extra_params)
    for key, _ in extra:
        if is_digits(key) or key in _QUERY_ALIASES:
            raise DigitalLinkError(f"extra parameter {key!r} is a GS1 AI; use attributes")
    return base, extra


def _attributes(attributes: Mapping[str, str]) -> Mapping[str, str]:
    normalised = {ai: _normalise_attribute(ai, value) for ai, value in attributes.items()}
    return MappingProxyType(dict(sorted(normalised.items())))


@dataclass(frozen=True)
class DigitalLink:
    """A GTIN with optional qualifiers and query attributes, as carried in a Digital Link.

    Qualifiers: ``cpv`` (22), ``lot`` (10) and ``serial`` (21), or ``tpx`` (235, a
    third-party serial) alone. Construction validates and normalises: ``gtin`` becomes a
    GTIN-14 and ``attributes`` a read-only mapping sorted by AI. ``base_url``
    (``scheme://host[/prefix]``) and ``extra_params`` (non-GS1 query parameters) are carried
    along but excluded from equality.
    """

    gtin: str
    lot: str | None = None
    serial: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    base_url: str | None = field(default=None, compare=False)
    extra_params: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    cpv: str | None = None
    tpx: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", validate_gtin(self.gtin))
        for ai, value in (("22", self.cpv), ("10", self.lot), ("21", self.serial)):
            if value is not None:
                _check_qualifier(ai, value)
        if self.tpx is not None:
            if self.cpv is not None or self.lot is not None or self.serial is not None:
                raise DigitalLinkError(
                    "AI 235 (third-party serial) stands alone after 01: no 22, 10 or 21 with it"
                )
            _check_qualifier("235", self.tpx)
        object.__setattr__(self, "attributes", _attributes(self.attributes))
        base, extra = _base_and_extra(self.base_url, self.extra_params)
        object.__setattr__(self, "base_url", base)
        object.__setattr__(self, "extra_params", extra)

    def __hash__(self) -> int:
        return hash(
            (self.gtin, self.cpv, self.lot, self.serial, self.tpx, tuple(self.attributes.items()))
        )

    @property
    def path(self) -> str:
        """The canonical path: ``/01/<GTIN-14>[/22/<cpv>][/10/<lot>][/21/<serial>]``."""
        path = f"/01/{self.gtin}"
        for ai, value in (
            ("22", self.cpv),
            ("10", self.lot),
            ("21", self.serial),
            ("235", self.tpx),
        ):
            if value is not None:
                path += f"/{ai}/{_encode(value)}"
        return path

    @property
    def query(self) -> str:
        """The canonical query string without ``?``: GS1 attributes sorted by AI, or ``""``."""
        return _encode_query(self.attributes)

    def uri(self, base_url: str | None = None) -> str:
        """Return the canonical URI on ``base_url``, or on the base URL the link was parsed from."""
        return _uri(base_url, self.base_url, self.path, self.query)


@dataclass(frozen=True)
class KeyLink:
    """A Digital Link of a primary key other than the GTIN, with its qualifiers in order."""

    key: str
    value: str
    qualifiers: tuple[tuple[str, str], ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    base_url: str | None = field(default=None, compare=False)
    extra_params: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        found = ais.lookup(self.key)
        if found is None or not found.primary_key or self.key == "01":
            raise DigitalLinkError(f"{_ai_label(self.key)} is not a primary key for KeyLink")
        ais.validate_value(self.key, self.value)
        _check_sequence(self.key, [ai for ai, _ in self.qualifiers])
        for ai, value in self.qualifiers:
            ais.validate_value(ai, value)
        object.__setattr__(self, "attributes", _attributes(self.attributes))
        base, extra = _base_and_extra(self.base_url, self.extra_params)
        object.__setattr__(self, "base_url", base)
        object.__setattr__(self, "extra_params", extra)

    def __hash__(self) -> int:
        return hash((self.key, self.value, self.qualifiers, tuple(self.attributes.items())))

    @property
    def path(self) -> str:
        path = f"/{self.key}/{_encode(self.value)}"
        for ai, value in self.qualifiers:
            path += f"/{ai}/{_encode(value)}"
        return path

    @property
    def query(self) -> str:
        return _encode_query(self.attributes)

    def uri(self, base_url: str | None = None) -> str:
        """Return the canonical URI on ``base_url``, or on the base URL the link was parsed from."""
        return _uri(base_url, self.base_url, self.path, self.query)


def _uri(base_url: str | None, parsed_from: str | None, path: str, query: str) -> str:
    base = _normalise_base_url(base_url) if base_url is not None else parsed_from
    if base is None:
        raise DigitalLinkError("no base URL: pass base_url, e.g. 'https://id.example.org'")
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def _check_sequence(key: str, qualifiers: list[str]) -> None:
    """The qualifiers of ``key`` in one of its allowed orders (dlpkey=22,10,21|235)."""
    found = ais.lookup(key)
    sequences = found.qualifier_sequences if found else ()
    seen: set[str] = set()
    for ai in qualifiers:
        if ai in seen:
            raise DigitalLinkError(f"{_ai_label(ai)} appears twice in the path")
        seen.add(ai)
    for sequence in sequences:
        if set(qualifiers) <= set(sequence):
            positions = [sequence.index(ai) for ai in qualifiers]
            if positions != sorted(positions):
                earlier, later = next(
                    (a, b)
                    for a, b in itertools.pairwise(qualifiers)
                    if sequence.index(a) > sequence.index(b)
                )
                raise DigitalLinkError(f"{_ai_label(later)} must come before {_ai_label(earlier)}")
            return
    if not qualifiers:
        return
    allowed = " or ".join(", ".join(sequence) for sequence in sequences) or "none"
    stray = next(
        (ai for ai in qualifiers if not any(ai in sequence for sequence in sequences)),
        None,
    )
    if stray is not None:
        raise DigitalLinkError(
            f"{_ai_label(stray)} is not a key qualifier of {key} (expected {allowed})"
        )
    raise DigitalLinkError(
        f"the qualifiers {', '.join(qualifiers)} of {key} are not one allowed sequence ({allowed})"
    )


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


def _parse_path(segments: list[str], path: str) -> tuple[str, str, list[tuple[str, str]]]:
    pairs = list(zip(segments[0::2], segments[1::2], strict=True))
    key_code, key_value = pairs[0]
    key = _PATH_ALIASES.get(key_code, key_code)
    value = _decode(key_value, _ai_label(key))
    qualifiers: list[tuple[str, str]] = []
    for code, raw_value in pairs[1:]:
        ai = _PATH_ALIASES.get(code, code)
        if ai in _PRIMARY_KEYS:
            raise DigitalLinkError(f"a Digital Link has one primary key; found {_ai_label(ai)} too")
        if any(ai == seen for seen, _ in qualifiers):
            raise DigitalLinkError(f"{_ai_label(ai)} appears twice in {path!r}")
        qualifiers.append((ai, _decode(raw_value, _ai_label(ai))))
    _check_sequence(key, [ai for ai, _ in qualifiers])
    return key, value, qualifiers


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


def parse_link(uri: str) -> DigitalLink | KeyLink:
    """Parse a GS1 Digital Link URI of any primary key; raise DigitalLinkError naming what is
    wrong."""
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
        if before in _PRIMARY_KEYS:
            raise DigitalLinkError(
                f"a Digital Link has one primary key; found {_ai_label(before)} before "
                f"{_ai_label(_PATH_ALIASES.get(segments[start], segments[start]))} "
                f"in {parts.path!r}"
            )
        key = _PATH_ALIASES.get(segments[start], segments[start])
        if before in _qualifiers_of(key) or before in ("10", "21"):
            raise DigitalLinkError(
                f"{_ai_label(before)} must follow the primary key {key} in {parts.path!r}"
            )
    key, value, qualifiers = _parse_path(segments[start:], parts.path)
    attributes, extra = _parse_query(parts.query)
    prefix = "/".join(segments[:start])
    base_url = f"{parts.scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    if key != "01":
        return KeyLink(
            key,
            value,
            tuple(qualifiers),
            attributes=attributes,
            base_url=base_url,
            extra_params=tuple(extra),
        )
    named = dict(qualifiers)
    return DigitalLink(
        gtin=validate_gtin(value),
        lot=named.get("10"),
        serial=named.get("21"),
        attributes=attributes,
        base_url=base_url,
        extra_params=tuple(extra),
        cpv=named.get("22"),
        tpx=named.get("235"),
    )


def parse_digital_link(uri: str) -> DigitalLink:
    """Parse a GS1 Digital Link URI of a GTIN; raise DigitalLinkError naming what is wrong."""
    link = parse_link(uri)
    if not isinstance(link, DigitalLink):
        raise DigitalLinkError(
            f"primary key {_ai_label(link.key)} is not supported; only AI 01 (GTIN)"
        )
    return link


def canonicalize_digital_link(uri: str) -> str:
    """Return the canonical form of a Digital Link URI, on the same resolver base URL."""
    return parse_link(uri).uri()
