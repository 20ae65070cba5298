"""Parcel codes: FBFBM, DKBM (GB/T 35958 / NY/T 2539) and 不动产单元代码 (GB/T 37346-2019)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digital_village.parcels.codes import (
    Bdcdyh,
    CodeError,
    Dkbm,
    Fbfbm,
    format_dkbm,
    format_fbfbm,
    parse_bdcdyh,
    parse_dkbm,
    parse_fbfbm,
)

# 旌阳区 510603, 孝泉镇 101 (docs/DESIGN.md §3), village 001, group 01.
XIAOQUAN_GROUP = "51060310100101"


def test_fbfbm_parts_and_statistical_codes() -> None:
    fbfbm = parse_fbfbm(XIAOQUAN_GROUP)
    assert (fbfbm.county, fbfbm.township, fbfbm.village, fbfbm.group) == (
        "510603",
        "101",
        "001",
        "01",
    )
    assert fbfbm.township_code == "510603101"
    assert fbfbm.village_code == "510603101001"
    assert fbfbm.level == "group"
    assert str(fbfbm) == fbfbm.code == XIAOQUAN_GROUP


def test_village_contracting_itself_has_group_00() -> None:
    assert parse_fbfbm("51060310100100").level == "village"
    assert parse_fbfbm("51060310100000").level == "township"


def test_dkbm_parts() -> None:
    dkbm = parse_dkbm(XIAOQUAN_GROUP + "00042")
    assert dkbm.sequence == 42
    assert dkbm.fbfbm == Fbfbm("510603", "101", "001", "01")
    assert (dkbm.county, dkbm.township, dkbm.village, dkbm.group) == ("510603", "101", "001", "01")
    assert str(dkbm) == "5106031010010100042"


def test_surrounding_whitespace_is_forgiven() -> None:
    assert parse_dkbm(" 5106031010010100042\t").sequence == 42


def test_format_helpers() -> None:
    assert format_fbfbm("510603", "101", "001") == "51060310100100"
    assert format_dkbm(XIAOQUAN_GROUP, 1) == "5106031010010100001"
    assert format_dkbm(parse_fbfbm(XIAOQUAN_GROUP), 99_999) == "5106031010010199999"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("510603101001010004", "must be 19 digits, got 18"),
        ("51060310100101000420", "must be 19 digits, got 20"),
        (XIAOQUAN_GROUP, "the 5-digit sequence is missing"),
        ("5106031010010100O42", "found 'O' at position 17"),
        ("51060310100101-0042", "found '-' at position 15"),
        ("５106031010010100042", "full-width or non-ASCII digit"),
        ("5106031010010100000", "sequence 00000"),
        ("5106001010010100001", "ends in 00"),
        ("9906031010010100001", "starts with 99, which is no GB/T 2260 province"),
        ("5106030000010100001", "township code 000"),
        ("5106031010000100001", "a group needs a village"),
    ],
)
def test_dkbm_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(CodeError, match=message) as caught:
        parse_dkbm(text)
    assert isinstance(caught.value, ValueError)


def test_fbfbm_errors() -> None:
    with pytest.raises(CodeError, match="that is a DKBM length"):
        parse_fbfbm("5106031010010100042")
    with pytest.raises(CodeError, match="must be a string"):
        parse_fbfbm(51060310100101)  # type: ignore[arg-type]
    with pytest.raises(CodeError, match="village code must contain only digits"):
        Fbfbm("510603", "101", "0a1", "01")


@pytest.mark.parametrize("sequence", [0, -1, 100_000])
def test_sequence_out_of_range(sequence: int) -> None:
    with pytest.raises(CodeError, match=r"1\.\.99999"):
        format_dkbm(XIAOQUAN_GROUP, sequence)


def test_bool_is_no_sequence() -> None:
    with pytest.raises(CodeError, match="must be an int"):
        Dkbm(parse_fbfbm(XIAOQUAN_GROUP), True)


def test_bdcdyh_contracted_farmland_without_fixture() -> None:
    unit = parse_bdcdyh("510603 001002 JD00001 W00000000", county="510603")
    assert unit.code == "510603001002JD00001W00000000"
    assert unit.parcel_code == "510603001002JD00001"
    assert unit.printed == "510603001002 JD00001 W00000000"
    assert (unit.cadastral_district, unit.cadastral_subdistrict) == ("001", "002")
    assert (unit.ownership, unit.parcel_type, unit.parcel_sequence) == ("J", "D", 1)
    assert unit.description == "集体土地所有权 / 土地承包经营权宗地(耕地) / 无定着物"


def test_bdcdyh_house_on_homestead() -> None:
    unit = parse_bdcdyh("510603101003JC00123F00010001")
    assert (unit.fixture_type, unit.fixture_number) == ("F", "00010001")
    assert unit == Bdcdyh("510603", "101", "003", "J", "C", 123, "F", "00010001")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("510603001002JD00001W0000000", "must be 28 characters"),
        ("510603001002jd00001W00000000", "letters must be upper case"),
        ("510603001002QD00001W00000000", "must be one of G, J, Z, got 'Q'"),
        ("510603001002JK00001W00000000", "type letter at position 14"),
        ("510603001002GA00001W00000000", "requires ownership J"),
        ("510603001002GC00001W00000000", "requires ownership J"),
        ("510603001002JH00001W00000000", "requires ownership G"),
        ("510603001002JD00000W00000000", "宗地顺序号 00000"),
        ("510603001002JD00001W00000007", "must be 00000000"),
        ("510603001002JD00001X00000000", "定着物特征码 at position 20"),
        ("510603001002JD0A001W00000000", "found 'A' at position 16"),
        ("510600001002JD00001W00000000", "ends in 00"),
        ("5106030010O2JD00001W00000000", "地籍子区 code must contain only digits"),
    ],
)
def test_bdcdyh_errors(text: str, message: str) -> None:
    with pytest.raises(CodeError, match=message):
        parse_bdcdyh(text)


def test_bdcdyh_county_prefix_checked() -> None:
    with pytest.raises(CodeError, match="belongs to county 510603, expected 510682"):
        parse_bdcdyh("510603001002JD00001W00000000", county="510682")


def test_bdcdyh_fields_are_validated_on_construction() -> None:
    with pytest.raises(CodeError):
        Bdcdyh("51060", "3001", "002", "J", "D", 1, "W", "00000000")


# --- properties -----------------------------------------------------------------------------

counties = st.builds(
    lambda province, rest: f"{province}{rest:04d}",
    st.sampled_from(["11", "32", "44", "51", "65", "82"]),
    st.integers(1, 9999).filter(lambda n: n % 100 != 0),
)
triple = st.integers(1, 999).map(lambda n: f"{n:03d}")
fbfbms = st.builds(Fbfbm, counties, triple, triple, st.integers(0, 99).map(lambda n: f"{n:02d}"))


@given(fbfbms, st.integers(1, 99_999))
def test_dkbm_round_trip(fbfbm: Fbfbm, sequence: int) -> None:
    code = format_dkbm(fbfbm, sequence)
    parsed = parse_dkbm(code)
    assert (parsed.fbfbm, parsed.sequence, parsed.code) == (fbfbm, sequence, code)
    assert parse_fbfbm(fbfbm.code) == fbfbm


@given(
    st.builds(
        Bdcdyh,
        counties,
        triple,
        triple,
        st.just("J"),
        st.sampled_from("ABSXCDEFWY"),
        st.integers(1, 99_999),
        st.sampled_from("FLQ"),
        st.integers(0, 99_999_999).map(lambda n: f"{n:08d}"),
    )
)
def test_bdcdyh_round_trip(unit: Bdcdyh) -> None:
    assert parse_bdcdyh(unit.code) == unit
    assert parse_bdcdyh(unit.printed) == unit


@given(st.text(max_size=30))
def test_arbitrary_text_raises_only_code_error(text: str) -> None:
    for parse in (parse_fbfbm, parse_dkbm, parse_bdcdyh):
        with contextlib.suppress(CodeError):
            parse(text)


@given(fbfbms, st.integers(1, 99_999), st.integers(0, 18), st.characters(exclude_categories=["Nd"]))
def test_any_non_digit_is_rejected_with_its_position(
    fbfbm: Fbfbm, sequence: int, index: int, char: str
) -> None:
    code = format_dkbm(fbfbm, sequence)
    broken = code[:index] + char + code[index + 1 :]
    if broken.strip() != broken:  # whitespace at the ends is forgiven, so the length changes
        return
    with pytest.raises(CodeError, match=f"position {index + 1}"):
        parse_dkbm(broken)
