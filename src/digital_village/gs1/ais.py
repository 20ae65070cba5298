"""GS1 Application Identifiers: which exist, the format of each value, and their role in a
Digital Link (primary key, key qualifier, data attribute).

Pure standard library. The table below is written from the GS1 Barcode Syntax Dictionary
(gs1/gs1-syntax-dictionary, the 2025 release; the GS1 General Specifications say the same):
one line per AI or range of AIs — the AI, flags (``?``: the AI may be a Digital Link data
attribute in the query string), its components (``N6`` six digits, ``N..8`` one to eight,
``X..20`` up to twenty characters of GS1 set 82, ``Y`` CSET 39, ``Z`` base64url, ``[…]``
optional) with the checks this module makes (``csum`` check digit, ``yymmd0``/``yymmdd`` dates,
``yyyymmdd``, ``iso3166`` country codes), and ``dlpkey[=qualifiers|alternative]`` for a Digital
Link primary key. Pairing rules (``req=``/``ex=``) and the other linters of the dictionary
(IBAN, coupon codes, ISO 4217, …) are not checked here.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from digital_village.gs1.keys import GS1_SET_82, DigitalLinkError, check_digit

__all__ = [
    "AI",
    "Component",
    "DigitalLinkError",
    "ai_label",
    "known",
    "lookup",
    "validate_value",
]

# AI  flags  components  [dlpkey]  # title
_TABLE: Final = """
00        ?  N18,csum                      dlpkey            # SSCC
01        ?  N14,csum                      dlpkey=22,10,21|235 # GTIN
02        ?  N14,csum                                        # CONTENT
03           N14,csum                                        # MTO GTIN
10        ?  X..20                                           # lot
11        ?  N6,yymmd0                                       # production date
12        ?  N6,yymmd0                                       # due date
13        ?  N6,yymmd0                                       # packaging date
15        ?  N6,yymmd0                                       # best before date
16        ?  N6,yymmd0                                       # sell by date
17        ?  N6,yymmd0                                       # expiry date
20        ?  N2                                              # variant
21           X..20                                           # serial
22           X..20                                           # consumer product variant
235          X..28                                           # third-party serial
240       ?  X..30                                           # additional product id
241       ?  X..30                                           # customer part number
242       ?  N..6                                            # made-to-order variation
243       ?  X..20                                           # packaging component number
250       ?  X..30                                           # secondary serial
251       ?  X..30                                           # reference to source entity
253       ?  N13,csum [X..17]              dlpkey            # GDTI
254          X..20                                           # GLN extension
255       ?  N13,csum [N..12]              dlpkey            # GCN
30        ?  N..8                                            # variable count
310n-316n ?  N6                                              # trade measure (metric)
320n-329n ?  N6                                              # trade measure (imperial)
330n-337n ?  N6                                              # logistic measure (metric)
340n-357n ?  N6                                              # logistic measure
360n-369n ?  N6                                              # volume
37        ?  N..8                                            # count
3900-3909 ?  N..15                                           # amount
3910-3919 ?  N3 N..15                                       # amount with currency
3920-3929 ?  N..15                                           # price
3930-3939 ?  N3 N..15                                        # price with currency
3940-3943 ?  N4                                              # percentage off
3950-3955 ?  N6                                              # price per unit of measure
400       ?  X..30                                           # order number
401       ?  X..30                         dlpkey            # GINC
402       ?  N17,csum                      dlpkey            # GSIN
403       ?  X..30                                           # route
410-413   ?  N13,csum                                        # GLN of a party
414       ?  N13,csum                      dlpkey=254|7040   # GLN of a location
415       ?  N13,csum                      dlpkey=8020       # GLN of the invoicing party
416       ?  N13,csum                                        # GLN of production
417       ?  N13,csum                      dlpkey=7040       # party GLN
420       ?  X..20                                           # ship to postal code
421       ?  N3,iso3166 X..9                                 # ship to postal code
422       ?  N3,iso3166                                      # country of origin
423       ?  N3,iso3166 [N..12]                              # country of initial processing
424       ?  N3,iso3166                                      # country of processing
425       ?  N3,iso3166 [N..12]                              # country of disassembly
426       ?  N3,iso3166                                      # country of full process
427       ?  X..3                                            # origin subdivision
4300-4306 ?  X..70                                           # ship to address
4307      ?  X2                                              # ship to country
4308      ?  X..30                                           # ship to phone
4309      ?  N20                                             # ship to geo
4310-4316 ?  X..70                                           # return to address
4317      ?  X2                                              # return to country
4318      ?  X..20                                           # return to postal code
4319      ?  X..30                                           # return to phone
4320      ?  X..35                                           # service description
4321-4323 ?  N1                                              # logistics flag
4324-4325 ?  N6,yymmd0 N4                                    # delivery date and time
4326      ?  N6,yymmdd                                       # release date
4330-4333 ?  N6 [X1]                                         # temperature
7001      ?  N13                                             # NATO stock number
7002      ?  X..30                                           # meat cut
7003      ?  N6,yymmdd N4                                    # expiry date and time
7004      ?  N..4                                            # active potency
7005      ?  X..12                                           # catch area
7006      ?  N6,yymmdd                                       # first freeze date
7007      ?  N6,yymmdd [N6,yymmdd]                           # harvest date
7008      ?  X..3                                            # aquatic species
7009      ?  X..10                                           # fishing gear type
7010      ?  X..2                                            # production method
7011      ?  N6,yymmdd [N4]                                  # test by date
7020-7022 ?  X..20                                           # refurbishment
7023      ?  X..30                                           # GIAI of an assembly
7030-7039 ?  N3 X..27                                        # processor
7040         N1 X3                                           # UIC with extension
7041         X..4                                            # freight unit type
710-716   ?  X..20                                           # national healthcare number
7230-7239 ?  X2 X..28                                        # certification reference
7240      ?  X..20                                           # protocol
7241      ?  N2                                              # AIDC media type
7242      ?  X..25                                           # version control number
7250      ?  N8,yyyymmdd                                     # date of birth
7251      ?  N8,yyyymmdd N4                                  # date and time of birth
7252      ?  N1                                              # biological sex
7253-7255 ?  X..40                                           # name
7256      ?  X..90                                           # full name
7257      ?  X..70                                           # person address
7258      ?  X3                                              # birth sequence
7259      ?  X..40                                           # baby
8001      ?  N14                                             # roll dimensions
8002      ?  X..20                                           # mobile phone id
8003      ?  N14,csum [X..16]              dlpkey            # GRAI
8004      ?  X..30                         dlpkey=7040       # GIAI
8005      ?  N6                                              # price per unit
8006      ?  N18                           dlpkey=22,10,21   # ITIP
8007      ?  X..34                                           # IBAN
8008      ?  N8 [N..4]                                       # production time
8009      ?  X..50                                           # optically readable sensor
8010      ?  Y..30                         dlpkey=8011       # CPID
8011         N..12                                           # CPID serial
8012      ?  X..20                                           # software version
8013      ?  X..25                         dlpkey            # GMN
8014         X..25                                           # MUDI
8017      ?  N18,csum                      dlpkey=8019       # GSRN of a provider
8018      ?  N18,csum                      dlpkey=8019       # GSRN of a recipient
8019         N..10                                           # service relation instance
8020         X..25                                           # payment slip reference
8026      ?  N18                                             # ITIP of contents
8030      ?  Z..90                                           # digital signature
8110      ?  X..70                                           # coupon code
8111      ?  N4                                              # loyalty points
8112      ?  X..70                                           # paperless coupon code
8200         X..70                                           # product URL
90        ?  X..30                                           # internal
91-99     ?  X..90                                           # internal
"""

_CSET39: Final = frozenset("#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BASE64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
_DIGITS: Final = frozenset("0123456789")
_CHARSETS: Final = {"N": _DIGITS, "X": GS1_SET_82, "Y": _CSET39, "Z": _BASE64URL}
_CHARSET_NAMES: Final = {
    "N": "digits",
    "X": "GS1 set 82",
    "Y": "GS1 set 39",
    "Z": "base64url",
}


@dataclass(frozen=True)
class Component:
    """One part of an AI's value: its kind (N, X, Y, Z), length and checks."""

    kind: str
    min_length: int
    max_length: int
    optional: bool
    checks: tuple[str, ...]


@dataclass(frozen=True)
class AI:
    """An Application Identifier: its code, title, components and Digital Link role."""

    code: str
    title: str
    components: tuple[Component, ...]
    data_attribute: bool  # may be a Digital Link query-string attribute
    primary_key: bool
    # Ordered qualifier sequences of a primary key ("22,10,21|235" → two alternatives).
    qualifier_sequences: tuple[tuple[str, ...], ...] = ()

    @property
    def qualifiers(self) -> frozenset[str]:
        return frozenset(q for sequence in self.qualifier_sequences for q in sequence)

    @property
    def fixed_length(self) -> int | None:
        """The value's length when every component is mandatory and fixed."""
        if all(c.min_length == c.max_length and not c.optional for c in self.components):
            return sum(c.max_length for c in self.components)
        return None


_COMPONENT = re.compile(r"^(\[)?([NXYZ])(\.\.)?(\d+)((?:,[a-z0-9]+)*)(\])?$")


def _component(text: str) -> Component:
    match = _COMPONENT.match(text)
    if match is None:
        raise ValueError(f"bad component {text!r} in the AI table")
    opening, kind, ranged, length, checks, _ = match.groups()
    size = int(length)
    return Component(
        kind=kind,
        min_length=1 if ranged else size,
        max_length=size,
        optional=opening is not None,
        checks=tuple(c for c in checks.split(",") if c),
    )


def _parse_table() -> dict[str, AI]:
    table: dict[str, AI] = {}
    for line in _TABLE.strip().splitlines():
        spec, _, title = line.partition("#")
        words = spec.split()
        codes, rest = words[0], words[1:]
        attribute = bool(rest) and rest[0] == "?"
        if attribute:
            rest = rest[1:]
        key = [w for w in rest if w.startswith("dlpkey")]
        components = tuple(_component(w) for w in rest if not w.startswith("dlpkey"))
        sequences: tuple[tuple[str, ...], ...] = ()
        if key and "=" in key[0]:
            sequences = tuple(
                tuple(alternative.split(",")) for alternative in key[0].split("=")[1].split("|")
            )
        first, _, last = codes.partition("-")
        if first.endswith("n"):
            # "310n-316n": the families 310 to 316, each with a last digit of 0 to 5 (the
            # position of the decimal point).
            family_codes = [
                f"{family}{point}"
                for family in range(int(first[:-1]), int(last[:-1]) + 1)
                for point in range(6)
            ]
        else:
            width = len(first)
            family_codes = [str(n).zfill(width) for n in range(int(first), int(last or first) + 1)]
        for code in family_codes:
            table[code] = AI(code, title.strip(), components, attribute, bool(key), sequences)
    return table


_AIS: Final = _parse_table()
PRIMARY_KEY_CODES: Final = tuple(code for code, ai in _AIS.items() if ai.primary_key)


def lookup(code: str) -> AI | None:
    """The AI with this code, or None when GS1 defines none."""
    return _AIS.get(code)


def known(code: str) -> bool:
    return code in _AIS


def ai_label(code: str) -> str:
    found = _AIS.get(code)
    return f"AI {code} ({found.title})" if found else f"AI {code}"


# ISO 3166-1 numeric country codes, as listed by the syntax dictionary's iso3166 linter.
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
ISO_3166_NUMERIC: Final = frozenset(_ISO_3166_NUMERIC_TEXT.split())


def check_date(label: str, value: str, *, zero_day_allowed: bool, full_year: bool = False) -> None:
    """A YYMMDD (or YYYYMMDD) date: real month and day; DD 00 only where allowed."""
    digits = 8 if full_year else 6
    form = "YYYYMMDD" if full_year else "YYMMDD"
    if len(value) != digits or not value.isascii() or not value.isdigit():
        raise DigitalLinkError(f"{label} must be a {form} date, got {value!r}")
    year = int(value[:-4]) if full_year else 2000 + int(value[:2])
    month, day = int(value[-4:-2]), int(value[-2:])
    if not 1 <= month <= 12:
        raise DigitalLinkError(f"{label} has invalid month {value[-4:-2]} in {value!r}")
    if day == 0:
        if not zero_day_allowed:
            raise DigitalLinkError(f"{label} does not allow day 00 in {value!r}")
        return
    # The GS1 sliding century window (General Specifications §7.12) only matters for leap
    # years at 2100 and 1900; every year 2000-2099 is a leap year iff YY % 4 == 0.
    if day > calendar.monthrange(max(year, 1), month)[1]:
        raise DigitalLinkError(f"{label} has invalid day {value[-2:]} in {value!r}")


_DATE_CHECKS: Final = {"yymmd0": (True, False), "yymmdd": (False, False), "yyyymmdd": (False, True)}


def _check_part(label: str, part: str, component: Component) -> None:
    for check in component.checks:
        if check in _DATE_CHECKS:
            zero_day, full_year = _DATE_CHECKS[check]
            check_date(label, part, zero_day_allowed=zero_day, full_year=full_year)
    fixed = component.min_length == component.max_length
    if (
        component.kind == "N"
        and fixed
        and (len(part) != component.max_length or not part.isdigit())
    ):
        raise DigitalLinkError(f"{label} must be {component.max_length} digits, got {part!r}")
    if len(part) < component.min_length:
        raise DigitalLinkError(f"{label} is too short: {part!r}")
    allowed = _CHARSETS[component.kind]
    for char in part:
        if char not in allowed:
            raise DigitalLinkError(
                f"{label} has a character outside {_CHARSET_NAMES[component.kind]}: {char!r}"
            )
    if "csum" in component.checks and part[-1] != check_digit(part[:-1]):
        raise DigitalLinkError(
            f"{label} check digit should be {check_digit(part[:-1])}, got {part[-1]} (in {part!r})"
        )
    if "iso3166" in component.checks and part not in ISO_3166_NUMERIC:
        raise DigitalLinkError(f"{label} {part!r} is not an ISO 3166-1 numeric country code")


@lru_cache(maxsize=4096)
def validate_value(code: str, value: str) -> str:
    """Check an AI's value against its format; return it, or raise DigitalLinkError."""
    found = _AIS.get(code)
    if found is None:
        raise DigitalLinkError(f"AI {code} is not a GS1 Application Identifier")
    label = ai_label(code)
    rest = value
    for index, component in enumerate(found.components):
        if not rest:
            if component.optional:
                break
            if index == 0:
                raise DigitalLinkError(f"{label} is empty")
            raise DigitalLinkError(f"{label} is too short: {value!r}")
        # Only the last component may vary in length; earlier ones take their fixed size.
        last = index == len(found.components) - 1
        size = min(len(rest), component.max_length) if last else component.max_length
        part, rest = rest[:size], rest[size:]
        _check_part(label, part, component)
    if rest:
        longest = sum(c.max_length for c in found.components)
        raise DigitalLinkError(f"{label} is at most {longest} characters, got {len(value)}")
    return value
