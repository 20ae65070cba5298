"""Threshold rules per parcel and metric, and the alerts readings raise. Every query of both.

A rule is a cooperative's, on a parcel it or one of its members holds (any parcel for a rule an
admin makes), and only that cooperative's own devices raise its alerts: an alert carries a
reading's value, and another cooperative's probe on the same parcel is not the rule's to see.

Ingest calls ``raise_alerts`` with the rows it stored; with no rule on the devices' parcels that
costs one small query per batch. An alert is raised once per rule and reading (a unique key),
so a repeated reading never raises it twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import utcnow
from digital_village.errors import Invalid, NotFound
from digital_village.iot import metrics, shapes
from digital_village.iot.models import Alert, AlertRule
from digital_village.iot.readings import InsertRow
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions

_ALERTS: Table = Alert.__table__  # type: ignore[assignment]
# Built once: ingest runs it for every batch, and building a statement costs more than running it.
_ACTIVE_RULES_ON = select(AlertRule).where(
    AlertRule.parcel_dkbm.in_(bindparam("dkbms", expanding=True)), AlertRule.disabled_at.is_(None)
)


class Stationed(Protocol):
    """Where a device stood over time, as ingest knows it (``ingest.DeviceContext``)."""

    @property
    def cooperative_id(self) -> int:
        """The cooperative the device belongs to."""
        ...

    @property
    def periods(self) -> tuple[tuple[int, int | None, str], ...]:
        """Installation periods, sorted: (start ms, end ms or None, parcel DKBM)."""
        ...

    def parcel_at(self, time_ms: int) -> str | None:
        """The parcel the device stood on at this time, if any."""
        ...


def add_rule(
    *,
    session: Session,
    actor: Actor,
    dkbm: str,
    metric: str,
    below: float | None,
    above: float | None,
    cooperative: str | None = None,
) -> AlertRule:
    """A threshold on one parcel's metric (a manager's for its own cooperative)."""
    actor.require_role(Role.MANAGER)
    try:
        entry = metrics.get_metric(metric)
    except metrics.UnknownMetricError as error:
        raise Invalid(str(error), known=list(error.known)) from None
    if below is None and above is None:
        raise Invalid("a rule needs a lower bound (below), an upper bound (above), or both")
    if below is not None and above is not None and below >= above:
        raise Invalid(f"below ({below:g}) must be less than above ({above:g})")
    parcel = parcels.get_active_parcel(session=session, dkbm=dkbm)
    if cooperative is not None:
        cooperative_id = regions.find_cooperative(session=session, key=cooperative).id
    elif actor.cooperative_id is not None:
        cooperative_id = actor.cooperative_id
    else:
        raise Invalid("name the cooperative the alerts go to (cooperative / --coop)")
    actor.require_cooperative(cooperative_id)
    # A manager watches parcels its cooperative or its members hold; alerts carry only its own
    # devices' readings whoever made the rule (raise_alerts).
    parcels.require_own_parcel(session=session, actor=actor, dkbm=parcel.dkbm)
    rule = AlertRule(
        cooperative_id=cooperative_id,
        parcel_dkbm=parcel.dkbm,
        metric_id=shapes.METRIC_CODES[entry.name],
        below=below,
        above=above,
    )
    session.add(rule)
    session.flush()
    return rule


def list_rules(*, session: Session, actor: Actor) -> Sequence[AlertRule]:
    """Active rules: all for an admin, its cooperative's for a manager."""
    query = select(AlertRule).where(AlertRule.disabled_at.is_(None)).order_by(AlertRule.id)
    if not actor.is_admin:
        actor.require_role(Role.MANAGER)
        query = query.where(AlertRule.cooperative_id == actor.cooperative_id)
    return session.scalars(query).all()


def disable_rule(*, session: Session, actor: Actor, rule_id: int) -> AlertRule:
    """Stop a rule from raising alerts (its alerts are kept)."""
    rule = session.get(AlertRule, rule_id)
    if rule is None:
        raise NotFound(f"no alert rule with id {rule_id}")
    actor.require_cooperative(rule.cooperative_id)
    if rule.disabled_at is None:
        rule.disabled_at = utcnow()
        session.flush()
    return rule


def list_alerts(
    *, session: Session, actor: Actor, dkbm: str | None = None, limit: int = 500
) -> Sequence[Alert]:
    """Raised alerts, newest reading first: all for an admin, its own for a manager."""
    query = select(Alert).order_by(Alert.time_ms.desc(), Alert.id.desc()).limit(limit)
    if not actor.is_admin:
        actor.require_role(Role.MANAGER)
        query = query.where(Alert.cooperative_id == actor.cooperative_id)
    if dkbm is not None:
        query = query.where(Alert.parcel_dkbm == dkbm)
    return session.scalars(query).all()


def raise_alerts(
    *,
    session: Session,
    contexts: Mapping[int, Stationed],
    rows: Sequence[InsertRow],
) -> int:
    """Raise alerts for stored rows crossing a rule of their parcel; return how many rows did."""
    dkbms = {dkbm for context in contexts.values() for _, _, dkbm in context.periods}
    if not dkbms:
        return 0
    rules = session.scalars(_ACTIVE_RULES_ON, {"dkbms": sorted(dkbms)}).all()
    if not rules:
        return 0
    by_key: dict[tuple[str, int], list[AlertRule]] = {}
    for rule in rules:
        by_key.setdefault((rule.parcel_dkbm, rule.metric_id), []).append(rule)
    watched = {metric_id for _, metric_id in by_key}
    raised: list[dict[str, Any]] = []
    now = utcnow()
    for device_id, metric_id, time_ms, value, _flagged in rows:
        if metric_id not in watched:
            continue
        context = contexts[device_id]
        dkbm = context.parcel_at(time_ms)
        for rule in by_key.get((dkbm or "", metric_id), ()):
            if rule.cooperative_id != context.cooperative_id:
                continue  # another cooperative's device on the parcel: not this rule's to see
            if (rule.below is not None and value < rule.below) or (
                rule.above is not None and value > rule.above
            ):
                raised.append(
                    {
                        "rule_id": rule.id,
                        "cooperative_id": rule.cooperative_id,
                        "device_id": device_id,
                        "parcel_dkbm": rule.parcel_dkbm,
                        "metric_id": metric_id,
                        "time_ms": time_ms,
                        "value": value,
                        "created_at": now,
                    }
                )
    if raised:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(_ALERTS).on_conflict_do_nothing(), raised)
    return len(raised)
