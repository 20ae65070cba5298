"""The fast RFC 8785 writer gives the reference implementation's bytes, or its error."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from digital_village.ledger import canonical

keys = st.one_of(
    st.text(max_size=8),
    # Characters where UTF-16 and code-point order disagree, and private-use ones next to them.
    st.text(alphabet=st.sampled_from("a\ue000\uffff\U0001f600\U00010000é中"), max_size=4),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e17, max_value=1e17),
    st.text(),
    st.text(alphabet=st.characters(max_codepoint=0x9F)),  # controls, DEL and C1 characters
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=30,
)


def _reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        return type(error)


def _fast(value: Any) -> bytes | type[Exception]:
    try:
        return canonical.dumps(value)
    except rfc8785.CanonicalizationError as error:
        return type(error)


@settings(max_examples=600, deadline=None)
@given(values)
def test_same_bytes_as_the_reference(value: Any) -> None:
    assert _fast(value) == _reference(value)


@pytest.mark.parametrize(
    "value",
    [
        2.0,
        -0.0,
        1e21,
        1e20,
        1e-7,
        1e-6,
        1e-4,
        9.999999999999999e-05,
        1e16,
        9999999999999998.0,
        -123.0,
        -0.00012,
        5e-324,
        1.7976931348623157e308,
        0.1 + 0.2,
        2**53 - 1,
        2**53,
        -(2**53),
        {"\U0001f600": 1, "\ue000": 2, "a": 3},
        {"é": 1, "z": 2, "中": 3},
        '\u2028\u2029\x7f\x00\x1f\b\f\n\r\t"\\',
        {"quantity": 2.4, "uom": "KGM", "nested": [1.5, 3.0, None, True]},
        ("tuple", 1),
    ],
)
def test_known_differences_between_the_writers(value: Any) -> None:
    assert _fast(value) == _reference(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "a"}, b"bytes", {"a": {1, 2}}])
def test_what_json_cannot_hold_is_refused(value: Any) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical.dumps(value)


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical.dumps({"text": "\ud800"})
