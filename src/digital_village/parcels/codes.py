"""Parcel codes: 发包方编码 (FBFBM), 承包地块编码 (DKBM) and 不动产单元代码.

FBFBM and DKBM follow GB/T 35958-2018 and NY/T 2539-2016 (docs/DESIGN.md §3): an FBFBM is 14 digits,
county (6, GB/T 2260) + township (3) + village (3) + group (2); a DKBM is 19 digits, the FBFBM
followed by a 5-digit parcel sequence 00001..99999.

The optional 28-character 不动产单元代码 (here ``bdcdyh``, the usual field name for 不动产单元号)
follows GB/T 37346-2019 §8: county (6) + 地籍区 (3) + 地籍子区 (3) + 宗地特征码 (2 letters)
+ 宗地顺序号 (5) + 定着物特征码 (1 letter) + 定着物单元编号 (8).

Parsing is strict and every error says what is wrong and where; only surrounding whitespace is
forgiven (codes pasted from spreadsheets), and, for the 不动产单元代码, the spaces of its printed
form ("510603 001002 JD00001 W00000000").
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Literal

__all__ = [
    "BDCDYH_LENGTH",
    "DKBM_LENGTH",
    "FBFBM_LENGTH",
    "Bdcdyh",
    "CodeError",
    "Dkbm",
    "Fbfbm",
    "format_dkbm",
    "format_fbfbm",
    "parse_bdcdyh",
    "parse_dkbm",
    "parse_fbfbm",
]

FBFBM_LENGTH = 14
DKBM_LENGTH = 19
BDCDYH_LENGTH = 28
MAX_SEQUENCE = 99_999

# GB/T 2260 province-level prefixes; a county code outside them cannot exist.
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "  # noqa: SIM905
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
_ASCII_DIGITS = frozenset("0123456789")

# GB/T 37346-2019 宗地特征码: first letter is the ownership of the land, second the kind of
# right the 宗地/宗海 carries.
_OWNERSHIP = {"G": "国家土地所有权", "J": "集体土地所有权", "Z": "土地所有权未确定或有争议"}
_PARCEL_TYPES = {
    "A": "集体土地所有权宗地",
    "B": "建设用地使用权宗地(地表)",
    "S": "建设用地使用权宗地(地上)",
    "X": "建设用地使用权宗地(地下)",
    "C": "宅基地使用权宗地",
    "D": "土地承包经营权宗地(耕地)",
    "E": "土地承包经营权宗地(林地)",
    "F": "土地承包经营权宗地(草地)",
    "H": "海域使用权宗海",
    "G": "无居民海岛使用权",
    "W": "使用权未确定或有争议",
    "Y": "其他使用权",
}
_FIXTURE_TYPES = {
    "F": "房屋等建筑物、构筑物",
    "L": "森林或林木",
    "Q": "其他定着物",
    "W": "无定着物",
}
# Collective ownership and homesteads exist only on collective land; sea areas are state-owned.
_REQUIRES_OWNERSHIP = {"A": "J", "C": "J", "H": "G", "G": "G"}

ContractorLevel = Literal["group", "village", "township"]


class CodeError(ValueError):
    """A malformed FBFBM, DKBM or 不动产单元代码; ``str(error)`` says what and where."""

    def __init__(self, message: str, *, value: str) -> None:
        super().__init__(message)
        self.message = message
        self.value = value


def _check_digits(part: str, *, what: str, length: int, code: str, offset: int = 0) -> None:
    if len(part) == length and part.isascii() and part.isdigit():
        return  # the usual case, checked in C; the loop below only explains a bad code
    if len(part) != length:
        raise CodeError(f"{what} must be {length} digits, got {len(part)}: {part!r}", value=code)
    for index, char in enumerate(part):
        if char not in _ASCII_DIGITS:
            hint = " (full-width or non-ASCII digit)" if char.isdigit() else ""
            raise CodeError(
                f"{what} must contain only digits 0-9; found {char!r}{hint} "
                f"at position {offset + index + 1} of {code!r}",
                value=code,
            )


def _check_county(county: str, *, code: str) -> None:
    _check_digits(county, what="county code", length=6, code=code)
    if county[:2] not in _PROVINCES:
        raise CodeError(
            f"county code {county} starts with {county[:2]}, which is no GB/T 2260 province",
            value=code,
        )
    if county.endswith("00"):
        raise CodeError(
            f"county code {county} ends in 00: that names a prefecture or province, not a county",
            value=code,
        )


@dataclass(frozen=True, slots=True)
class Fbfbm:
    """发包方编码: the collective that contracts out land (a group, or the village itself)."""

    county: str
    township: str
    village: str
    group: str = "00"

    def __post_init__(self) -> None:
        code = self.county + self.township + self.village + self.group
        _check_county(self.county, code=code)
        _check_digits(self.township, what="township code", length=3, code=code, offset=6)
        _check_digits(self.village, what="village code", length=3, code=code, offset=9)
        _check_digits(self.group, what="group code", length=2, code=code, offset=12)
        if self.township == "000":
            raise CodeError(
                f"township code 000 in {code}: townships are numbered from 001", value=code
            )
        if self.village == "000" and self.group != "00":
            raise CodeError(
                f"group {self.group} under village 000 in {code}: a group needs a village",
                value=code,
            )

    @property
    def code(self) -> str:
        """The 14-digit code."""
        return self.county + self.township + self.village + self.group

    @property
    def township_code(self) -> str:
        """The 9-digit statistical code of the township (e.g. 510603101 孝泉镇)."""
        return self.county + self.township

    @property
    def village_code(self) -> str:
        """The 12-digit statistical code of the village."""
        return self.county + self.township + self.village

    @property
    def level(self) -> ContractorLevel:
        """Which collective contracts: a 村民小组, the village, or (village 000) the township."""
        if self.group != "00":
            return "group"
        return "village" if self.village != "000" else "township"

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True, slots=True)
class Dkbm:
    """承包地块编码: a contracted parcel, numbered 1..99999 within its FBFBM."""

    fbfbm: Fbfbm
    sequence: int

    def __post_init__(self) -> None:
        # bool is an int; True as a sequence number is a bug upstream, not parcel 00001.
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int):
            raise CodeError(
                f"parcel sequence must be an int, got {type(self.sequence).__name__}",
                value=repr(self.sequence),
            )
        if not 1 <= self.sequence <= MAX_SEQUENCE:
            raise CodeError(
                f"parcel sequence must be 1..{MAX_SEQUENCE} (00001..99999), got {self.sequence}",
                value=f"{self.fbfbm.code}{self.sequence}",
            )

    @property
    def code(self) -> str:
        """The 19-digit code."""
        return f"{self.fbfbm.code}{self.sequence:05d}"

    @property
    def county(self) -> str:
        """6-digit GB/T 2260 county code."""
        return self.fbfbm.county

    @property
    def township(self) -> str:
        """3-digit township part."""
        return self.fbfbm.township

    @property
    def village(self) -> str:
        """3-digit village part."""
        return self.fbfbm.village

    @property
    def group(self) -> str:
        """2-digit group part (00 when the village contracts)."""
        return self.fbfbm.group

    def __str__(self) -> str:
        return self.code


def _clean(text: str, *, what: str) -> str:
    if not isinstance(text, str):
        raise CodeError(f"{what} must be a string, got {type(text).__name__}", value=repr(text))
    return text.strip()


def parse_fbfbm(text: str) -> Fbfbm:
    """Parse a 14-digit 发包方编码, raising CodeError with the exact problem."""
    code = _clean(text, what="FBFBM")
    if len(code) != FBFBM_LENGTH:
        hint = " (that is a DKBM length; use parse_dkbm)" if len(code) == DKBM_LENGTH else ""
        raise CodeError(
            f"FBFBM must be {FBFBM_LENGTH} digits, got {len(code)} characters{hint}: {code!r}",
            value=code,
        )
    _check_digits(code, what="FBFBM", length=FBFBM_LENGTH, code=code)
    return Fbfbm(code[:6], code[6:9], code[9:12], code[12:14])


def parse_dkbm(text: str) -> Dkbm:
    """Parse a 19-digit 承包地块编码, raising CodeError with the exact problem."""
    code = _clean(text, what="DKBM")
    if len(code) != DKBM_LENGTH:
        hint = (
            " (that is an FBFBM length; the 5-digit sequence is missing)" if len(code) == 14 else ""
        )
        raise CodeError(
            f"DKBM must be {DKBM_LENGTH} digits, got {len(code)} characters{hint}: {code!r}",
            value=code,
        )
    _check_digits(code, what="DKBM", length=DKBM_LENGTH, code=code)
    if code[14:] == "00000":
        raise CodeError(
            f"DKBM {code} has sequence 00000; parcels are numbered from 00001", value=code
        )
    return Dkbm(parse_fbfbm(code[:14]), int(code[14:]))


def format_fbfbm(county: str, township: str, village: str, group: str = "00") -> str:
    """Build and validate a 14-digit FBFBM from its parts."""
    return Fbfbm(county, township, village, group).code


def format_dkbm(fbfbm: Fbfbm | str, sequence: int) -> str:
    """Build a 19-digit DKBM from an FBFBM (parsed or text) and a sequence 1..99999."""
    owner = fbfbm if isinstance(fbfbm, Fbfbm) else parse_fbfbm(fbfbm)
    return Dkbm(owner, sequence).code


@dataclass(frozen=True, slots=True)
class Bdcdyh:
    """不动产单元代码 (GB/T 37346-2019): 宗地 or 宗海 plus the fixture on it."""

    county: str
    cadastral_district: str
    cadastral_subdistrict: str
    ownership: str
    parcel_type: str
    parcel_sequence: int
    fixture_type: str
    fixture_number: str

    @property
    def code(self) -> str:
        """The 28-character code without spaces."""
        return self.parcel_code + self.fixture_type + self.fixture_number

    @property
    def parcel_code(self) -> str:
        """The 19-character 宗地代码 (county + 地籍区 + 地籍子区 + 特征码 + 顺序号)."""
        return (
            f"{self.county}{self.cadastral_district}{self.cadastral_subdistrict}"
            f"{self.ownership}{self.parcel_type}{self.parcel_sequence:05d}"
        )

    @property
    def printed(self) -> str:
        """The spaced form used on certificates: county+地籍区+子区, 宗地, 定着物."""
        code = self.code
        return f"{code[:12]} {code[12:19]} {code[19:]}"

    @property
    def description(self) -> str:
        """What the letters mean, e.g. '集体土地所有权 / 土地承包经营权宗地(耕地) / 无定着物'."""
        return " / ".join(
            (
                _OWNERSHIP[self.ownership],
                _PARCEL_TYPES[self.parcel_type],
                _FIXTURE_TYPES[self.fixture_type],
            )
        )

    def __post_init__(self) -> None:
        if _split_bdcdyh(self.code) != astuple(self):
            raise CodeError(f"不动产单元代码 fields do not line up: {self!r}", value=self.code)

    def __str__(self) -> str:
        return self.code


def _check_letter(
    char: str, allowed: dict[str, str], *, what: str, position: int, code: str
) -> None:
    if char not in allowed:
        case = " (letters must be upper case)" if char.upper() in allowed else ""
        raise CodeError(
            f"{what} at position {position} of {code!r} must be one of "
            f"{', '.join(allowed)}, got {char!r}{case}",
            value=code,
        )


def _split_bdcdyh(code: str) -> tuple[str, str, str, str, str, int, str, str]:
    if len(code) != BDCDYH_LENGTH:
        raise CodeError(
            f"不动产单元代码 must be {BDCDYH_LENGTH} characters (spaces ignored), "
            f"got {len(code)}: {code!r}",
            value=code,
        )
    _check_county(code[:6], code=code)
    _check_digits(code[6:9], what="地籍区 code", length=3, code=code, offset=6)
    _check_digits(code[9:12], what="地籍子区 code", length=3, code=code, offset=9)
    ownership, parcel_type = code[12], code[13]
    _check_letter(ownership, _OWNERSHIP, what="宗地特征码 ownership letter", position=13, code=code)
    _check_letter(parcel_type, _PARCEL_TYPES, what="宗地特征码 type letter", position=14, code=code)
    required = _REQUIRES_OWNERSHIP.get(parcel_type)
    if required is not None and ownership != required:
        raise CodeError(
            f"宗地特征码 {ownership}{parcel_type} in {code!r}: type {parcel_type} "
            f"({_PARCEL_TYPES[parcel_type]}) requires ownership {required}",
            value=code,
        )
    _check_digits(code[14:19], what="宗地顺序号", length=5, code=code, offset=14)
    if code[14:19] == "00000":
        raise CodeError(f"宗地顺序号 00000 in {code!r}: 宗地 are numbered from 00001", value=code)
    fixture_type = code[19]
    _check_letter(fixture_type, _FIXTURE_TYPES, what="定着物特征码", position=20, code=code)
    _check_digits(code[20:], what="定着物单元编号", length=8, code=code, offset=20)
    if fixture_type == "W" and code[20:] != "00000000":
        raise CodeError(
            f"定着物单元编号 {code[20:]} in {code!r}: with no fixture (W) it must be 00000000",
            value=code,
        )
    head = (code[:6], code[6:9], code[9:12], ownership, parcel_type)
    return (*head, int(code[14:19]), fixture_type, code[20:])


def parse_bdcdyh(text: str, *, county: str | None = None) -> Bdcdyh:
    """Parse a 28-character 不动产单元代码; with ``county`` also check its county prefix.

    Checked: length, digits and letters in their places, the letter tables of GB/T 37346-2019,
    letter combinations the standard forbids (A/C only on collective land, H/G only state-owned),
    宗地顺序号 00000, and 定着物单元编号 00000000 when the fixture type is W (none).
    """
    code = "".join(_clean(text, what="不动产单元代码").split())
    parts = _split_bdcdyh(code)
    if county is not None and parts[0] != county:
        raise CodeError(
            f"不动产单元代码 {code!r} belongs to county {parts[0]}, expected {county}", value=code
        )
    return Bdcdyh(*parts)
