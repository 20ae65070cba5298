"""统一社会信用代码 (Unified Social Credit Code, USCC) per GB 32100-2015.

Co-operatives, companies and 个体工商户 that sell through the ledger are identified by their USCC:
18 characters from ``0-9 A-H J-N P-R T-U W-Y`` (no I, O, S, V, Z):

* position 1, 登记管理部门代码 (registration authority: 1 机构编制, 5 民政, 9 工商, ...);
* position 2, 机构类别代码 (entity type within that authority, e.g. 93 = 农民专业合作社);
* positions 3-8, 登记管理机关行政区划码, a GB/T 2260 division code (6 digits);
* positions 9-17, 主体标识码: the GB 11714 organisation code, whose last character is its own
  check character;
* position 18, the check character: ``(31 - Σ value(cᵢ)·3^(i-1) mod 31) mod 31`` over
  positions 1-17, with ``value`` the index of the character in the alphabet above.

The GB 32100 check character is always verified. The embedded GB 11714 check (weights
3 7 9 10 5 8 4 2, ``11 - Σ mod 11`` with 10 → X and 11 → 0) is reported by
``USCC.organization_code_valid`` and enforced only on request, because the whole code is already
protected by the mod-31 check and a wrongly refused real code would lock a seller out.
Positions 1-2 are not checked against a table of authorities: published tables disagree beyond
the common codes, so ``category`` names only those and returns None otherwise.

Codes issued by some pilot regions before the standard (e.g. Xiamen's ``91350211M0000XUF46``)
do not satisfy the check character and are rejected like any other mistyped code.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "USCC",
    "USCC_ALPHABET",
    "USCC_LENGTH",
    "USCCError",
    "compute_check_character",
    "compute_organization_check_character",
    "validate_uscc",
]

USCC_LENGTH = 18
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUES = {char: value for value, char in enumerate(USCC_ALPHABET)}
_MODULUS = len(USCC_ALPHABET)  # 31, a prime, so every single-character change is detected
# GB 32100-2015: the weight of position i is 3^(i-1) mod 31.
_WEIGHTS = tuple(pow(3, position, _MODULUS) for position in range(USCC_LENGTH - 1))
# GB 11714-1997 organisation code: 8 body characters, then a mod-11 check character.
_ORGANIZATION_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_DIVISION = slice(2, 8)

# GB 32100-2015 registration authority and entity type codes that published tables agree on.
_CATEGORIES = {
    "11": "机关",
    "12": "事业单位",
    "13": "中央编办直接管理机构编制的群众团体",
    "19": "其他(机构编制)",
    "51": "社会团体",
    "52": "民办非企业单位",
    "53": "基金会",
    "59": "其他(民政)",
    "91": "企业",
    "92": "个体工商户",
    "93": "农民专业合作社",
    "Y1": "其他",
}


class USCCError(ValueError):
    """A malformed Unified Social Credit Code; ``str(error)`` says what is wrong and where."""


def _check_characters(code: str, *, first_position: int = 1) -> None:
    for offset, char in enumerate(code):
        if char not in _VALUES:
            raise USCCError(
                f"character {char!r} is not allowed at position {first_position + offset}"
            )


def compute_check_character(first17: str) -> str:
    """Return the GB 32100-2015 check character (position 18) for the first 17 characters."""
    first17 = first17.upper()
    if len(first17) != USCC_LENGTH - 1:
        raise USCCError(f"expected the first 17 characters of a USCC, got {len(first17)}")
    _check_characters(first17)
    total = sum(_VALUES[char] * weight for char, weight in zip(first17, _WEIGHTS, strict=True))
    return USCC_ALPHABET[-total % _MODULUS]


def compute_organization_check_character(first8: str) -> str:
    """Return the GB 11714 check character for an 8-character organisation code body.

    In a USCC the body is positions 9-16 and the result belongs at position 17.
    """
    first8 = first8.upper()
    if len(first8) != len(_ORGANIZATION_WEIGHTS):
        raise USCCError(f"expected an 8-character organisation code body, got {len(first8)}")
    _check_characters(first8, first_position=9)
    # GB 11714 values letters A-Z as 10-35, i.e. base-36 digits, not USCC alphabet indices.
    total = sum(
        int(char, 36) * weight for char, weight in zip(first8, _ORGANIZATION_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


@dataclass(frozen=True)
class USCC:
    """A Unified Social Credit Code whose characters and check character have been verified.

    Constructing one validates it; lower-case letters and surrounding whitespace are forgiven
    (codes typed or pasted by people) and normalised away.
    """

    code: str

    def __post_init__(self) -> None:
        code = self.code.strip().upper()
        if len(code) != USCC_LENGTH:
            raise USCCError(f"USCC must be {USCC_LENGTH} characters, got {len(code)}")
        _check_characters(code)
        division = code[_DIVISION]
        for offset, char in enumerate(division):
            if not "0" <= char <= "9":
                raise USCCError(
                    f"administrative division code (positions 3-8) must be digits, "
                    f"got {char!r} at position {3 + offset}"
                )
        expected = compute_check_character(code[:17])
        if code[17] != expected:
            raise USCCError(f"check character should be {expected!r}, got {code[17]!r}")
        object.__setattr__(self, "code", code)

    def __str__(self) -> str:
        return self.code

    @property
    def registration_authority(self) -> str:
        """Position 1, 登记管理部门代码 (e.g. ``"9"`` for market regulation, formerly 工商)."""
        return self.code[0]

    @property
    def entity_type(self) -> str:
        """Position 2, 机构类别代码, meaningful together with the registration authority."""
        return self.code[1]

    @property
    def category(self) -> str | None:
        """The name of the authority/entity-type pair, e.g. ``"农民专业合作社"`` for 93."""
        return _CATEGORIES.get(self.code[:2])

    @property
    def division_code(self) -> str:
        """Positions 3-8, the GB/T 2260 division of the registering office."""
        return self.code[_DIVISION]

    @property
    def organization_code(self) -> str:
        """Positions 9-17, the GB 11714 organisation code (主体标识码)."""
        return self.code[8:17]

    @property
    def check_character(self) -> str:
        """Position 18."""
        return self.code[17]

    @property
    def organization_code_valid(self) -> bool:
        """Whether position 17 is the GB 11714 check character of positions 9-16."""
        return compute_organization_check_character(self.code[8:16]) == self.code[16]


def validate_uscc(code: str, *, check_organization_code: bool = False) -> USCC:
    """Validate a USCC and return it normalised; raise USCCError naming what is wrong.

    With ``check_organization_code`` the embedded GB 11714 check character (position 17) must
    be right as well.
    """
    uscc = USCC(code)
    if check_organization_code and not uscc.organization_code_valid:
        expected = compute_organization_check_character(uscc.code[8:16])
        raise USCCError(
            f"organisation code check character (position 17) should be {expected!r}, "
            f"got {uscc.code[16]!r}"
        )
    return uscc
