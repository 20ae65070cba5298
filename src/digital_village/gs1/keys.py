"""GS1 keys: the Digital Link primary keys, the mod-10 check digit and GTIN validation.

Pure standard library. Sources (facts only): the GS1 General Specifications (check digit
calculation, GS1 AI encodable character set 82), the GS1 Barcode Syntax Dictionary
(gs1/gs1-syntax-dictionary: an AI marked ``dlpkey`` is a Digital Link primary key) and the GS1
Digital Link URI grammar (``GS1_Digital_Link_Grammar_1_2.abnf`` and later: the primary key
codes and the 1.0/1.1 short names).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = [
    "GS1_SET_82",
    "GTIN_LENGTHS",
    "PRIMARY_KEYS",
    "SHORT_NAMES",
    "DigitalLinkError",
    "GTINError",
    "check_digit",
    "gtin_check_digit",
    "is_digits",
    "validate_gtin",
]


class DigitalLinkError(ValueError):
    """A malformed GS1 key or Digital Link URI; ``str(error)`` names what is wrong."""


class GTINError(DigitalLinkError):
    """A malformed GTIN (length, characters or check digit)."""


GTIN_LENGTHS: Final = (8, 12, 13, 14)

# GS1 General Specifications, "GS1 AI encodable character set 82"; the syntax dictionary's
# cset82 linter lists the same 82 characters.
GS1_SET_82: Final = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)

# Every GS1 Digital Link primary key, in numeric order: the AIs the syntax dictionary marks
# ``dlpkey`` and the Digital Link grammar lists as primary identification keys. The GMN (8013)
# and the pay-to GLN (415) are among them; the constrained form of CBV 2.0's event hash has no
# pattern for either (see digital_village.gs1.canonical).
PRIMARY_KEYS: Final = (
    "00",  # SSCC
    "01",  # GTIN
    "253",  # GDTI
    "255",  # GCN
    "401",  # GINC
    "402",  # GSIN
    "414",  # GLN of a physical location
    "415",  # GLN of the invoicing party (pay to)
    "417",  # party GLN
    "8003",  # GRAI
    "8004",  # GIAI
    "8006",  # ITIP
    "8010",  # CPID
    "8013",  # GMN (global model number)
    "8017",  # GSRN of the provider
    "8018",  # GSRN of the recipient
)

# The convenience short names of Digital Link 1.0/1.1 and the AI each stands for: primary keys
# and the GTIN's qualifiers. Read when parsing (labels printed by other tools carry them), never
# written.
SHORT_NAMES: Final = {
    "gtin": "01", "itip": "8006", "cpid": "8010", "gln": "414", "party": "417",
    "gsrnp": "8017", "gsrn": "8018", "gcn": "255", "sscc": "00", "gdti": "253",
    "ginc": "401", "gsin": "402", "grai": "8003", "giai": "8004", "cpv": "22",
    "lot": "10", "ser": "21",
}  # fmt: skip

_DIGITS = re.compile(r"[0-9]+")


def is_digits(value: str) -> bool:
    """True for a non-empty string of ASCII digits (``str.isdigit`` also takes '٣')."""
    return _DIGITS.fullmatch(value) is not None


def check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit of a key's digits without its check digit.

    Weights alternate 3, 1, 3, ... from the digit next to the check digit, so the result does
    not depend on left zero-padding and the same rule serves GTINs, GLNs, SSCCs and GSRNs.
    """
    total = sum(
        int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(digits))
    )
    return str(-total % 10)


def gtin_check_digit(payload: str) -> str:
    """Return the GS1 mod-10 check digit for a GTIN without its last digit.

    ``payload`` is 7, 11, 12 or 13 digits (a GTIN-8/12/13/14 minus its check digit); this is
    how sample GTINs for tests and demos are made.
    """
    if not is_digits(payload):
        raise GTINError(f"GTIN payload must contain only digits, got {payload!r}")
    if len(payload) + 1 not in GTIN_LENGTHS:
        raise GTINError(
            f"GTIN payload must be 7, 11, 12 or 13 digits (a GTIN without its check digit), "
            f"got {len(payload)}"
        )
    return check_digit(payload)


@lru_cache(maxsize=4096)
def validate_gtin(value: str) -> str:
    """Check an 8, 12, 13 or 14-digit GTIN and return it as a zero-padded GTIN-14.

    Remembered: a capture checks the same few trade items' GTINs thousands of times.
    """
    if not is_digits(value):
        raise GTINError(f"GTIN must contain only digits, got {value!r}")
    if len(value) not in GTIN_LENGTHS:
        raise GTINError(f"GTIN must be 8, 12, 13 or 14 digits, got {len(value)}")
    expected = check_digit(value[:-1])
    if value[-1] != expected:
        raise GTINError(f"GTIN check digit should be {expected}, got {value[-1]} (in {value!r})")
    return value.zfill(14)
