"""GS1 keys: the check digit of every key length, and which AIs are Digital Link primary keys.

Vectors: the GS1 General Specifications' check digit examples as quoted by the CBV 2.0 event
hash tests (SSCC 106141412345678908, GLN 0012345111112), biip's GTIN-13 5901234123457, and
the GS1 Barcode Syntax Dictionary's ``dlpkey`` entries (8013 GMN and 415 among them).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digital_village.gs1 import canonical
from digital_village.gs1.digital_link import DigitalLinkError, parse_digital_link
from digital_village.gs1.keys import PRIMARY_KEYS, check_digit, gtin_check_digit


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("5901234123457", "GTIN-13"),
        ("106141412345678908", "SSCC"),
        ("0012345111112", "GLN"),
        ("10614141073464", "GTIN-14"),
    ],
)
def test_check_digit_of_each_key_length(key: str, what: str) -> None:
    assert check_digit(key[:-1]) == key[-1], what


digits = st.text(alphabet="0123456789", min_size=1, max_size=25)


@given(digits)
def test_left_zero_padding_does_not_change_the_check_digit(payload: str) -> None:
    assert check_digit(payload) == check_digit(payload.zfill(25))


@given(digits, st.data())
def test_any_single_digit_change_changes_the_check_digit(payload: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(payload) - 1))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != payload[position]]))
    changed = payload[:position] + replacement + payload[position + 1 :]
    assert check_digit(changed) != check_digit(payload)


@given(
    st.sampled_from([7, 11, 12, 13]).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n)
    )
)
def test_the_gtin_check_digit_is_the_gs1_check_digit(payload: str) -> None:
    assert gtin_check_digit(payload) == check_digit(payload)


@pytest.mark.parametrize(("ai", "value"), [("8013", "GMN12345ABC"), ("415", "0012345111112")])
def test_a_gmn_or_pay_to_link_is_a_digital_link_this_resolver_does_not_serve(
    ai: str, value: str
) -> None:
    assert ai in PRIMARY_KEYS
    with pytest.raises(DigitalLinkError, match=f"primary key AI {ai} .*is not supported"):
        parse_digital_link(f"https://id.example.org/{ai}/{value}")


@pytest.mark.parametrize("ai", ["8013", "415"])
def test_the_event_hash_keeps_a_gmn_or_pay_to_link_as_written(ai: str) -> None:
    # CBV 2.0's constrained form (and its reference implementation) has no pattern for them.
    assert canonical.normalise(f"https://example.com/{ai}/0012345111112") is None
