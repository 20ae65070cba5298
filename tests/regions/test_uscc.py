"""Tests of 统一社会信用代码 (GB 32100-2015) validation.

Vector sources (facts and examples only; no code is taken from them):

* arthurdejong/python-stdnum ``tests/test_cn_uscc.doctest``: real codes "found online", and
  the corrupted 91110000600037341N / 9111000060003IOZSV.
* dromara/hutool ``CreditCodeUtilTest``: 91310115591693856A and 91310110666007217T (valid) and
  91350211M00013FA1N, an early pilot-region code that fails the GB 32100 check.
* aarioai/id-rule ``chinese_org_id.go`` (header comment): three more Fujian pilot-region codes
  and the check characters the standard gives for them (1, R, J).
* 914403001922038216 is the published code of 华为技术有限公司 (Huawei Technologies) and
  9144030071526726XG that of 腾讯科技(深圳)有限公司 (Tencent Technology, Shenzhen); the latter is
  also in the python-stdnum list.
* The GB 11714 weights (3 7 9 10 5 8 4 2, mod 11, 10 → X, 11 → 0) are those documented with
  several validators (e.g. liujianko/HAODA ``checkOrganization``); Huawei's code embeds the
  organisation code 19220382-1, whose check character the rule reproduces.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digital_village.regions.uscc import (
    USCC,
    USCC_ALPHABET,
    USCCError,
    compute_check_character,
    compute_organization_check_character,
    validate_uscc,
)

HUAWEI = "914403001922038216"
TENCENT = "9144030071526726XG"

# A sample from python-stdnum's list: enterprises (91), a public institution (12), 个体工商户
# (92), new-style MA codes and codes whose check character or embedded check is a letter/X.
PUBLISHED_CODES = [
    HUAWEI,
    TENCENT,
    "121200004013590816",
    "91110000600037341L",
    "91110000710926094P",
    "91120224064012553U",
    "911522010783710635",
    "91152201078371135X",
    "9115220107837757XE",
    "9115220107837941X1",
    "9115220107839138X8",
    "91310000631696382C",
    "91310115MA1K3BTP2B",
    "91340600MA2PBM9HXD",
    "91340603MA2UJXXCXF",
    "91440300568520498A",
    "9144060573144633XL",
    "91620105L015101280",
    "91620105MA71T4YW8Q",
    "9162010555628132X1",
    "92340602MA2PBMEM24",
    "92340603MA2PBMYMX1",
    "92340621MA2PBKRXXG",
    "92340621MA2UK3PJXE",
    "91310115591693856A",
    "91310110666007217T",
]


@pytest.mark.parametrize("code", PUBLISHED_CODES)
def test_published_codes_are_valid(code: str) -> None:
    uscc = validate_uscc(code)
    assert uscc.code == code
    assert str(uscc) == code
    assert compute_check_character(code[:17]) == code[17]


@pytest.mark.parametrize("code", PUBLISHED_CODES)
def test_published_codes_embed_a_valid_organisation_code(code: str) -> None:
    # Evidence for the GB 11714 rule: every real code in the sample satisfies it.
    assert validate_uscc(code).organization_code_valid
    assert validate_uscc(code, check_organization_code=True).code == code


def test_fields_of_huawei_code() -> None:
    uscc = validate_uscc(HUAWEI)
    assert uscc.registration_authority == "9"
    assert uscc.entity_type == "1"
    assert uscc.category == "企业"
    assert uscc.division_code == "440300"  # 深圳市
    assert uscc.organization_code == "192203821"
    assert uscc.check_character == "6"
    assert compute_organization_check_character("19220382") == "1"


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("121200004013590816", "事业单位"),
        ("92340602MA2PBMEM24", "个体工商户"),
        ("91110000600037341L", "企业"),
    ],
)
def test_category(code: str, category: str) -> None:
    assert validate_uscc(code).category == category


def test_farmer_cooperative_category_and_unknown_pairs() -> None:
    cooperative = "93510603MA6000001"
    assert validate_uscc(cooperative + compute_check_character(cooperative)).category == (
        "农民专业合作社"
    )
    other = "N2510603MA6000001"
    assert validate_uscc(other + compute_check_character(other)).category is None


@pytest.mark.parametrize(
    ("code", "expected", "got"),
    [
        # python-stdnum: last character corrupted.
        ("91110000600037341N", "L", "N"),
        ("914403001922038217", "6", "7"),
        # Pilot-region codes issued before GB 32100 (hutool, aarioai/id-rule).
        ("91350100M0001TGQXM", "1", "M"),
        ("91350211M0000XUF46", "R", "6"),
        ("91350203M0001FUE2P", "J", "P"),
        ("91350211M00013FA1N", "3", "N"),
    ],
)
def test_wrong_check_character(code: str, expected: str, got: str) -> None:
    with pytest.raises(USCCError) as caught:
        validate_uscc(code)
    assert str(caught.value) == f"check character should be {expected!r}, got {got!r}"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("9111000060003IOZSV", "character 'I' is not allowed at position 14"),
        ("9144I30071526726XG", "character 'I' is not allowed at position 5"),
        ("91440300715267O6XG", "character 'O' is not allowed at position 15"),
        ("914403007152672SXG", "character 'S' is not allowed at position 16"),
        ("9144030071526726XV", "character 'V' is not allowed at position 18"),
        ("Z144030071526726XG", "character 'Z' is not allowed at position 1"),
        ("91440300-1526726XG", "character '-' is not allowed at position 9"),
        ("9144030071526726X中", "character '中' is not allowed at position 18"),
        ("12345", "USCC must be 18 characters, got 5"),
        ("", "USCC must be 18 characters, got 0"),
        (TENCENT + "0", "USCC must be 18 characters, got 19"),
        ("9144 030071526726XG", "USCC must be 18 characters, got 19"),
        (
            "91A40300715267260G",
            "administrative division code (positions 3-8) must be digits, got 'A' at position 3",
        ),
        (
            "914403B0715267260G",
            "administrative division code (positions 3-8) must be digits, got 'B' at position 7",
        ),
    ],
)
def test_malformed_codes(code: str, message: str) -> None:
    with pytest.raises(USCCError) as caught:
        validate_uscc(code)
    assert str(caught.value) == message


def test_lower_case_and_surrounding_whitespace_are_normalised() -> None:
    assert validate_uscc("  9144030071526726xg\n").code == TENCENT
    assert USCC(" 914403001922038216 ") == USCC(HUAWEI)


def test_constructing_validates() -> None:
    with pytest.raises(USCCError, match="check character"):
        USCC("914403001922038217")


def test_uscc_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="18 characters"):
        validate_uscc("1")


def test_organisation_check_is_opt_in() -> None:
    # A sample code with a correct GB 32100 check character but a wrong GB 11714 one.
    first17 = "93510603MA6000001"
    code = first17 + compute_check_character(first17)
    # M=22, A=10, 6: 22·3 + 10·7 + 6·9 = 190 ≡ 3 (mod 11), so 11 - 3 = 8.
    assert compute_organization_check_character("MA600000") == "8"
    assert not validate_uscc(code).organization_code_valid
    with pytest.raises(USCCError) as caught:
        validate_uscc(code, check_organization_code=True)
    assert str(caught.value) == (
        "organisation code check character (position 17) should be '8', got '1'"
    )


@pytest.mark.parametrize(
    ("body", "check"),
    [("19220382", "1"), ("71526726", "X"), ("60003734", "1"), ("MA1K3BTP", "2"), ("07837757", "X")],
)
def test_organisation_check_character_known_answers(body: str, check: str) -> None:
    assert compute_organization_check_character(body) == check


def test_organisation_check_maps_eleven_to_zero() -> None:
    # A weighted sum of 0 (mod 11) gives 11, which GB 11714 writes as '0'.
    assert compute_organization_check_character("00000000") == "0"


@pytest.mark.parametrize("first17", ["9144030071526726", "9144030071526726XG", ""])
def test_compute_check_character_needs_17_characters(first17: str) -> None:
    with pytest.raises(USCCError, match="first 17 characters"):
        compute_check_character(first17)


def test_compute_check_character_rejects_letters_outside_the_alphabet() -> None:
    with pytest.raises(USCCError, match="'O' is not allowed at position 2"):
        compute_check_character("9O4403001922038216"[:17])


def test_compute_check_character_weights() -> None:
    # A single 1 at position i contributes its weight 3^(i-1) mod 31, so the check character
    # is the alphabet entry at (31 - weight) mod 31.
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    for position, weight in enumerate(weights):
        first17 = "0" * position + "1" + "0" * (16 - position)
        assert compute_check_character(first17) == USCC_ALPHABET[(31 - weight) % 31]
    assert compute_check_character("0" * 17) == "0"


# --- properties -----------------------------------------------------------------------------

DIGITS = "0123456789"
alphabet_char = st.sampled_from(USCC_ALPHABET)
prefixes = st.tuples(
    st.text(alphabet=USCC_ALPHABET, min_size=2, max_size=2),
    st.text(alphabet=DIGITS, min_size=6, max_size=6),
    st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9),
).map("".join)


@given(prefixes)
def test_any_prefix_with_its_check_character_validates(first17: str) -> None:
    code = first17 + compute_check_character(first17)
    uscc = validate_uscc(code)
    assert uscc.code == code
    assert validate_uscc(code.lower()) == uscc


@given(prefixes, st.data())
def test_changing_any_one_character_breaks_the_code(first17: str, data: st.DataObject) -> None:
    code = first17 + compute_check_character(first17)
    position = data.draw(st.integers(0, 17))
    # Stay within the characters allowed at that position so that only the check can object.
    allowed = DIGITS if 2 <= position <= 7 else USCC_ALPHABET
    replacement = data.draw(st.sampled_from([c for c in allowed if c != code[position]]))
    changed = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(USCCError, match="check character should be"):
        validate_uscc(changed)


@given(prefixes, st.data())
def test_swapping_adjacent_different_characters_is_detected(
    first17: str, data: st.DataObject
) -> None:
    # Weights of neighbours differ by a factor of 3, so a swap changes the sum by
    # (a - b)(w_i - w_{i+1}) = (a - b)·2·w_i, never a multiple of the prime 31.
    code = first17 + compute_check_character(first17)
    position = data.draw(st.integers(0, 15))
    if code[position] == code[position + 1]:
        return
    swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
    with pytest.raises(USCCError):
        validate_uscc(swapped)
