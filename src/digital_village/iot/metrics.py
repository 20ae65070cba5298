"""The metric catalogue: what a field sensor may report, in which unit, and what is plausible.

Every reading that enters the net names one of these metrics and is expressed in its unit;
decoders convert vendor units (µS/cm, m³/m³, mV) into these before a value reaches ingest.
``check_value`` is the one place that decides whether a value is kept as is, kept with a
flag for review, or refused.

Pure and stdlib-only: no I/O, no settings; callers pass policy overrides in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "CATALOGUE",
    "Check",
    "Metric",
    "OutOfRangePolicy",
    "UnknownMetricError",
    "Verdict",
    "check_value",
    "get_metric",
    "metric_names",
]


class OutOfRangePolicy(StrEnum):
    """What happens to a value outside its metric's plausible range."""

    REJECT = "reject"
    FLAG = "flag"


class Verdict(StrEnum):
    """The outcome of checking one value."""

    ACCEPTED = "accepted"
    FLAGGED = "flagged"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Metric:
    """One catalogue entry: name, unit, bilingual label and plausible range (inclusive)."""

    name: str
    unit: str
    label_zh: str
    label_en: str
    minimum: float
    maximum: float
    policy: OutOfRangePolicy


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict on one value; ``reason`` says why whenever it is not plainly accepted."""

    metric: str
    value: float
    verdict: Verdict
    reason: str | None = None

    @property
    def stored(self) -> bool:
        """Whether the reading should be kept (accepted or flagged)."""
        return self.verdict is not Verdict.REJECTED


class UnknownMetricError(ValueError):
    """A metric name that is not in the catalogue; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.known = metric_names()
        super().__init__(f"unknown metric {name!r}; known metrics: {', '.join(self.known)}")


_REJECT = OutOfRangePolicy.REJECT
_FLAG = OutOfRangePolicy.FLAG

# Ranges are what a working sensor in a field can report, not agronomic targets.
# REJECT where a value outside is physically impossible (a share above 100 %, pH off the
# scale) and can only be a fault; FLAG where an extreme is rare but real (saline soil,
# cloudbursts, a 12 V solar battery), so it is kept for a person to look at.
_ENTRIES = (
    Metric("soil_moisture", "%", "土壤含水量", "Soil moisture", 0.0, 100.0, _REJECT),
    Metric("soil_temperature", "°C", "土壤温度", "Soil temperature", -40.0, 80.0, _FLAG),
    Metric("soil_ec", "mS/cm", "土壤电导率", "Soil electrical conductivity", 0.0, 20.0, _FLAG),
    Metric("air_temperature", "°C", "空气温度", "Air temperature", -60.0, 60.0, _FLAG),
    Metric("air_humidity", "%", "空气湿度", "Air humidity", 0.0, 100.0, _REJECT),
    Metric("rainfall", "mm", "降雨量", "Rainfall", 0.0, 500.0, _FLAG),
    Metric("illuminance", "lx", "光照度", "Illuminance", 0.0, 200_000.0, _FLAG),
    Metric("soil_ph", "pH", "土壤酸碱度", "Soil pH", 0.0, 14.0, _REJECT),
    Metric("soil_n", "mg/kg", "土壤氮含量", "Soil nitrogen", 0.0, 2000.0, _FLAG),
    Metric("soil_p", "mg/kg", "土壤磷含量", "Soil phosphorus", 0.0, 2000.0, _FLAG),
    Metric("soil_k", "mg/kg", "土壤钾含量", "Soil potassium", 0.0, 2000.0, _FLAG),
    Metric("battery", "V", "电池电压", "Battery voltage", 0.0, 15.0, _FLAG),
)

CATALOGUE: Mapping[str, Metric] = MappingProxyType({metric.name: metric for metric in _ENTRIES})
"""Every known metric by name, in catalogue order. Read-only."""


def metric_names() -> tuple[str, ...]:
    """Return the names of all catalogue metrics, in catalogue order."""
    return tuple(CATALOGUE)


def get_metric(name: str) -> Metric:
    """Return the catalogue entry for ``name``; raise ``UnknownMetricError`` if there is none."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownMetricError(name) from None


def check_value(
    metric: str,
    value: float,
    *,
    policies: Mapping[str, OutOfRangePolicy] | None = None,
) -> Check:
    """Check one value of ``metric`` against its plausible range.

    ``policies`` overrides the catalogue's out-of-range policy per metric name (for
    example a deployment that wants to keep slightly negative soil moisture for review).
    Non-numbers and non-finite values are always rejected: no policy can make NaN a reading.

    Raises ``UnknownMetricError`` if ``metric``, or any key of ``policies``, is not in the
    catalogue, so a misspelt override fails loudly instead of silently doing nothing.
    """
    entry = get_metric(metric)
    if policies:
        for name in policies:
            get_metric(name)
    policy = OutOfRangePolicy(policies.get(metric, entry.policy)) if policies else entry.policy

    # bool is an int subclass; a JSON true reaching here is a shape error, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Check(metric, value, Verdict.REJECTED, f"{value!r} is not a number")
    if not math.isfinite(value):
        return Check(metric, value, Verdict.REJECTED, f"{value!r} is not a finite number")

    if entry.minimum <= value <= entry.maximum:
        return Check(metric, value, Verdict.ACCEPTED)

    side = "below" if value < entry.minimum else "above"
    reason = (
        f"{metric} {value:g} {entry.unit} is {side} the plausible range "
        f"[{entry.minimum:g}, {entry.maximum:g}] {entry.unit}"
    )
    verdict = Verdict.REJECTED if policy is OutOfRangePolicy.REJECT else Verdict.FLAGGED
    return Check(metric, value, verdict, reason)
