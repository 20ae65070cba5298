"""The metric catalogue and the range check."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digital_village.iot.metrics import (
    CATALOGUE,
    Check,
    OutOfRangePolicy,
    UnknownMetricError,
    Verdict,
    check_value,
    get_metric,
    metric_names,
)

# docs/DESIGN.md §4: the catalogue's metrics and units.
DESIGN_UNITS = {
    "soil_moisture": "%",
    "soil_temperature": "°C",
    "soil_ec": "mS/cm",
    "air_temperature": "°C",
    "air_humidity": "%",
    "rainfall": "mm",
    "illuminance": "lx",
    "soil_ph": "pH",
    "soil_n": "mg/kg",
    "soil_p": "mg/kg",
    "soil_k": "mg/kg",
    "battery": "V",
}


def test_catalogue_holds_exactly_the_designed_metrics_and_units() -> None:
    assert {name: metric.unit for name, metric in CATALOGUE.items()} == DESIGN_UNITS
    assert metric_names() == tuple(CATALOGUE)


@pytest.mark.parametrize("name", sorted(DESIGN_UNITS))
def test_every_entry_is_complete(name: str) -> None:
    metric = get_metric(name)
    assert metric.name == name
    assert metric.minimum < metric.maximum
    assert metric.label_en
    assert any("\u4e00" <= char <= "\u9fff" for char in metric.label_zh)
    assert metric.policy in set(OutOfRangePolicy)


def test_catalogue_and_entries_are_read_only() -> None:
    with pytest.raises(TypeError):
        CATALOGUE["soil_moisture"] = CATALOGUE["battery"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATALOGUE["soil_moisture"].maximum = 200.0  # type: ignore[misc]


def test_value_in_range_is_accepted_without_reason() -> None:
    assert check_value("soil_moisture", 23.4) == Check("soil_moisture", 23.4, Verdict.ACCEPTED)


def test_range_bounds_are_inclusive() -> None:
    assert check_value("soil_moisture", 0.0).verdict is Verdict.ACCEPTED
    assert check_value("soil_moisture", 100).verdict is Verdict.ACCEPTED


def test_impossible_soil_moisture_is_rejected_by_default() -> None:
    # The DL-5TM vendor example (probe in air) decodes to -2.15 %.
    check = check_value("soil_moisture", -2.15)
    assert check.verdict is Verdict.REJECTED
    assert not check.stored
    assert check.reason is not None
    assert "below" in check.reason and "[0, 100] %" in check.reason


def test_extreme_but_possible_ec_is_flagged_by_default() -> None:
    # The LSE01 vendor example reports 28200 µS/cm.
    check = check_value("soil_ec", 28.2)
    assert check.verdict is Verdict.FLAGGED
    assert check.stored
    assert check.reason is not None and "above" in check.reason


def test_policies_mapping_overrides_the_default_per_metric() -> None:
    policies = {
        "soil_moisture": OutOfRangePolicy.FLAG,
        "soil_ec": OutOfRangePolicy.REJECT,
    }
    assert check_value("soil_moisture", -2.15, policies=policies).verdict is Verdict.FLAGGED
    assert check_value("soil_ec", 28.2, policies=policies).verdict is Verdict.REJECTED
    # Metrics the mapping does not name keep their defaults.
    assert check_value("air_humidity", 101, policies=policies).verdict is Verdict.REJECTED


def test_policy_given_as_plain_string_is_understood() -> None:
    policies: dict[str, OutOfRangePolicy] = {"soil_moisture": "flag"}  # type: ignore[dict-item]
    assert check_value("soil_moisture", -1, policies=policies).verdict is Verdict.FLAGGED


def test_misspelt_policy_override_fails_loudly() -> None:
    with pytest.raises(UnknownMetricError, match="soil_moistur"):
        check_value("soil_ec", 1.0, policies={"soil_moistur": OutOfRangePolicy.FLAG})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected_whatever_the_policy(value: float) -> None:
    check = check_value("soil_ec", value, policies={"soil_ec": OutOfRangePolicy.FLAG})
    assert check.verdict is Verdict.REJECTED
    assert check.reason is not None and "finite" in check.reason


def test_booleans_are_not_numbers() -> None:
    assert check_value("battery", True).verdict is Verdict.REJECTED


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(UnknownMetricError) as caught:
        check_value("soil_salinity", 1.0)
    message = str(caught.value)
    assert "'soil_salinity'" in message
    for name in DESIGN_UNITS:
        assert name in message
    assert caught.value.known == metric_names()
    assert isinstance(caught.value, ValueError)


def test_get_metric_unknown_raises() -> None:
    with pytest.raises(UnknownMetricError):
        get_metric("Soil_Moisture")


@given(
    name=st.sampled_from(sorted(DESIGN_UNITS)),
    value=st.floats(allow_nan=False, allow_infinity=False),
    policy=st.sampled_from(list(OutOfRangePolicy)),
)
def test_verdict_follows_range_and_policy(
    name: str, value: float, policy: OutOfRangePolicy
) -> None:
    metric = get_metric(name)
    check = check_value(name, value, policies={name: policy})
    if metric.minimum <= value <= metric.maximum:
        assert check.verdict is Verdict.ACCEPTED and check.reason is None
    elif policy is OutOfRangePolicy.REJECT:
        assert check.verdict is Verdict.REJECTED and check.reason
    else:
        assert check.verdict is Verdict.FLAGGED and check.reason
    assert check.metric == name and check.value == value
