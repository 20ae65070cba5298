"""Plausibility flags: numbers that are possible to record but unlikely to be true.

Pure functions. Nothing is refused for being implausible; the flags are shown to managers and
on the public page, next to the facts they question.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Flag:
    """One doubt about a recorded fact, and the node of the trace graph it concerns."""

    kind: str  # yield, mass_balance, pre_harvest_interval or repeat_harvest
    subject: str
    message: str
    value: float
    expected: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "value": round(self.value, 4),
        }
        if self.expected is not None:
            body["expected"] = list(self.expected)
        return body


# The fewest days between two harvests of one crop on one parcel: a field gives one harvest a
# season (rapeseed is sown in autumn and cut in May; Sichuan's rice is one crop a year, its
# ratoon taking two months or more). A second harvest sooner is a repeated or mistyped claim.
SEASON_DAYS: Final[dict[str, int]] = {"rapeseed": 150, "paddy": 60, "wheat": 150}


def _outside(value: float, low: float | None, high: float | None) -> bool:
    return (low is not None and value < low) or (high is not None and value > high)


def yield_flag(
    *,
    subject: str,
    product: str,
    kilograms: float,
    area_mu: float,
    low: float | None,
    high: float | None,
) -> Flag | None:
    """A harvest whose yield per 亩 lies outside the crop's range."""
    if area_mu <= 0 or (low is None and high is None):
        return None
    per_mu = kilograms / area_mu
    if not _outside(per_mu, low, high):
        return None
    return Flag(
        "yield",
        subject,
        f"{product}: {per_mu:.0f} kg/亩 from {area_mu:.2f} 亩 is outside the expected "
        f"{low:g}–{high:g} kg/亩",
        per_mu,
        (low or 0.0, high or 0.0),
    )


def mass_balance_flag(
    *,
    subject: str,
    product: str,
    output: float,
    input_: float,
    unit_out: str,
    unit_in: str,
    low: float | None,
    high: float | None,
) -> Flag | None:
    """A transformation whose output per unit of input lies outside the product's ratios."""
    if input_ <= 0 or (low is None and high is None):
        return None
    ratio = output / input_
    if not _outside(ratio, low, high):
        return None
    return Flag(
        "mass_balance",
        subject,
        f"{product}: {output:g} {unit_out} from {input_:g} {unit_in} is {ratio:.3f} "
        f"{unit_out}/{unit_in}, outside the expected {low:g}–{high:g}",
        ratio,
        (low or 0.0, high or 0.0),
    )


def pre_harvest_interval_flag(
    *,
    subject: str,
    pesticide: str,
    sprayed: dt.datetime,
    harvested: dt.datetime,
    interval_days: int,
) -> Flag | None:
    """A harvest sooner after spraying than the pesticide's 安全间隔期 allows."""
    waited = (harvested - sprayed).total_seconds() / 86400
    if waited < 0 or waited >= interval_days:
        return None
    return Flag(
        "pre_harvest_interval",
        subject,
        f"harvested {waited:.1f} days after spraying {pesticide}; its pre-harvest interval "
        f"(安全间隔期) is {interval_days} days",
        waited,
        (float(interval_days), float(interval_days)),
    )


def repeat_harvest_flag(
    *,
    subject: str,
    product: str,
    category: str,
    dkbm: str,
    harvested: dt.datetime,
    earlier: dt.datetime,
    earlier_lot: str,
) -> Flag | None:
    """A parcel harvested of the same crop again within that crop's season."""
    season = SEASON_DAYS.get(category)
    days = (harvested - earlier).total_seconds() / 86400
    if season is None or days < 0 or days >= season:
        return None
    return Flag(
        "repeat_harvest",
        subject,
        f"{product}: parcel {dkbm} was harvested {days:.0f} days earlier too (lot "
        f"{earlier_lot}); one season of this crop is at least {season} days",
        days,
        (float(season), float(season)),
    )
