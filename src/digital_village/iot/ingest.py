"""Ingest: checked readings of devices admitted, stored once, and the alerts they raise.

``DeviceContext`` is what ingest knows of a device (loaded once per request, or cached by an
MQTT worker); ``store`` keeps what the device may report and hands the stored rows to
``alerts``. The deployment's out-of-range policies per metric are kept here too. Services
never commit: a batch of readings and its alerts commit together.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import utcnow
from digital_village.errors import Forbidden, Invalid
from digital_village.iot import alerts, devices, metrics, readings, shapes
from digital_village.iot.models import Device, MetricPolicy

_METRIC_OF = itemgetter(1)
_TIME_OF = itemgetter(2)
# Built once: ingest runs it for every batch, and building a statement costs more than running it.
_METRIC_POLICIES = select(MetricPolicy.metric_id, MetricPolicy.policy)


@dataclass(frozen=True)
class DeviceContext:
    """What ingest needs to know about a device, loaded once per request or cached by a worker."""

    id: int
    cooperative_id: int
    model: str
    metric_ids: frozenset[int] | None
    # Installation periods, sorted: (start ms, end ms or None, parcel DKBM).
    periods: tuple[tuple[int, int | None, str], ...]
    retired: bool

    def period_covering(self, low_ms: int, high_ms: int) -> bool:
        """Whether one installation period holds every time in [low, high]."""
        for start, end, _ in self.periods:
            if start <= low_ms and (end is None or high_ms < end):
                return True
        return False

    def parcel_at(self, time_ms: int) -> str | None:
        """The parcel the device stood on at this time, if any."""
        starts = [start for start, _, _ in self.periods]
        at = bisect.bisect_right(starts, time_ms) - 1
        if at < 0:
            return None
        _, end, dkbm = self.periods[at]
        return dkbm if end is None or time_ms < end else None


def device_context(*, session: Session, device: Device) -> DeviceContext:
    """The ingest view of a device."""
    periods = tuple(
        (
            shapes.datetime_to_ms(row.installed_at),
            shapes.datetime_to_ms(row.removed_at) if row.removed_at else None,
            row.parcel_dkbm,
        )
        for row in devices.installations(session=session, device_id=device.id)
    )
    metric_ids = (
        frozenset(shapes.METRIC_CODES[name] for name in device.metrics) if device.metrics else None
    )
    return DeviceContext(
        id=device.id,
        cooperative_id=device.cooperative_id,
        model=device.model,
        metric_ids=metric_ids,
        periods=periods,
        retired=device.retired_at is not None,
    )


def target_device(*, session: Session, actor: Actor, device_id: int | None) -> Device:
    """The device a write is for: a device token's own; a manager's or admin's named one."""
    if actor.role is Role.DEVICE:
        assert actor.device_id is not None
        if device_id is not None and device_id != actor.device_id:
            raise Forbidden(
                f"this device token belongs to device {actor.device_id}; "
                f"it may not write for device {device_id}"
            )
        return devices.get_device(session=session, device_id=actor.device_id)
    actor.require_role(Role.MANAGER)
    if device_id is None:
        raise Invalid("name the device the readings are from (device_id)")
    device = devices.get_device(session=session, device_id=device_id)
    devices.require_manages(actor, device)
    return device


@dataclass
class IngestResult:
    """How a payload's readings fared."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    flagged: int = 0
    rejections: list[shapes.Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "flagged": self.flagged,
            "rejections": [
                item.as_dict() for item in self.rejections[: shapes.MAX_LISTED_PROBLEMS]
            ],
        }
        if self.ignored:
            body["ignored"] = sorted(set(self.ignored))
        return body


def payload_invalid(error: shapes.PayloadError) -> Invalid:
    """A malformed payload as the domain error: 422, listing what is wrong, nothing stored."""
    return Invalid(
        f"nothing was stored: {error}",
        errors=[problem.as_dict() for problem in error.problems],
        error_count=error.total,
    )


def admit(
    context: DeviceContext, checked: shapes.Checked
) -> tuple[list[readings.InsertRow], list[shapes.Problem], int]:
    """Keep the checked rows the device may report; return rows, rejections, flagged count."""
    source = checked.rows
    rejected = list(checked.rejected)
    if not source:
        return [], rejected, 0
    allowed = context.metric_ids
    if context.period_covering(min(map(_TIME_OF, source)), max(map(_TIME_OF, source))) and (
        allowed is None or set(map(_METRIC_OF, source)) <= allowed
    ):
        # The usual case: every reading falls in one installation, every metric is one the
        # device reports; the checked rows are stored as they are.
        return source, rejected, checked.flagged
    rows: list[readings.InsertRow] = []
    flagged = 0
    for row, where in zip(source, checked.where, strict=True):
        if allowed is not None and row[1] not in allowed:
            rejected.append(_refusal(context, row[1], row[2], where, "metric"))
        elif context.parcel_at(row[2]) is None:
            rejected.append(_refusal(context, row[1], row[2], where, "time"))
        else:
            flagged += row[4]
            rows.append(row)
    return rows, rejected, flagged


def _refusal(
    context: DeviceContext, metric_id: int, time_ms: int, where: int | str, why: str
) -> shapes.Problem:
    metric = shapes.METRIC_NAMES[metric_id]
    label = f"readings[{where}]" if isinstance(where, int) else where
    if why == "metric":
        reported = sorted(shapes.METRIC_NAMES[m] for m in context.metric_ids or ())
        reason = (
            f"device {context.id} is not registered to report {metric} "
            f"(it reports {', '.join(reported)})"
        )
    elif not context.periods:
        reason = f"device {context.id} is not installed on any parcel"
    else:
        first = shapes.ms_to_rfc3339(context.periods[0][0])
        reason = (
            f"device {context.id} stood on no parcel at that time "
            f"(first installed {first}; readings before or between installations have no parcel)"
        )
    return shapes.Problem(label, reason, metric, shapes.ms_to_rfc3339(time_ms))


def store(
    *,
    session: Session,
    batches: Sequence[tuple[DeviceContext, shapes.Checked]],
    marks: readings.DayMarks | None = None,
) -> IngestResult:
    """Store checked readings of one or more devices in the session's transaction."""
    result = IngestResult()
    all_rows: list[readings.InsertRow] = []
    for context, checked in batches:
        if context.retired:
            raise Forbidden(f"device {context.id} was retired; it takes no readings")
        rows, rejected, flagged = admit(context, checked)
        result.rejected += len(rejected)
        result.rejections.extend(rejected[: shapes.MAX_LISTED_PROBLEMS])
        result.flagged += flagged
        result.ignored.extend(checked.ignored)
        all_rows.extend(rows)
    inserted = readings.insert_many(session, all_rows, marks=marks)
    result.accepted = inserted
    result.duplicates = len(all_rows) - inserted
    if all_rows:
        alerts.raise_alerts(session=session, contexts={c.id: c for c, _ in batches}, rows=all_rows)
    return result


def ingest_checked(*, session: Session, device: Device, checked: shapes.Checked) -> IngestResult:
    """Store one device's checked payload."""
    context = device_context(session=session, device=device)
    return store_checked(session=session, context=context, checked=checked)


def store_checked(
    *, session: Session, context: DeviceContext, checked: shapes.Checked
) -> IngestResult:
    """Store one device's checked payload, its device read beforehand (``device_context``,
    perhaps in a read session, so that the writer is taken only to store)."""
    if checked.device_id is not None and checked.device_id != context.id:
        raise Forbidden(
            f"the payload names device {checked.device_id}, but it is sent for device {context.id}"
        )
    return store(session=session, batches=[(context, checked)])


def check_decoded(
    *,
    device_id: int,
    values: Mapping[str, Any],
    time_ms: int,
    now_ms: int,
    where: str,
    policies: Mapping[str, metrics.OutOfRangePolicy] | None = None,
) -> shapes.Checked:
    """Check named values measured at one time (a decoded LoRaWAN frame)."""
    collector = shapes.Collector(now_ms, device_id=device_id, policies=policies)
    for metric, value in values.items():
        collector.add(f"{where}.{metric}", metric, time_ms, value)
    return collector.finish()


def metric_policies(*, session: Session) -> dict[str, metrics.OutOfRangePolicy] | None:
    """The deployment's overrides of the catalogue's out-of-range policies (None: none)."""
    rows = session.execute(_METRIC_POLICIES).all()
    if not rows:
        return None
    return {
        shapes.METRIC_NAMES[metric_id]: metrics.OutOfRangePolicy(policy)
        for metric_id, policy in rows
    }


def set_metric_policy(
    *, session: Session, actor: Actor, metric: str, policy: str | None
) -> metrics.OutOfRangePolicy:
    """Reject or flag a metric's implausible values from now on; None restores the catalogue's.

    Returns the policy in force. Admin only: it changes what every device may store.
    """
    actor.require_admin()
    try:
        entry = metrics.get_metric(metric)
    except metrics.UnknownMetricError as error:
        raise Invalid(str(error), known=list(error.known)) from None
    row = session.get(MetricPolicy, shapes.METRIC_CODES[entry.name])
    if policy is None or policy == "default":
        if row is not None:
            session.delete(row)
            session.flush()
        return entry.policy
    try:
        chosen = metrics.OutOfRangePolicy(policy)
    except ValueError:
        raise Invalid(f"policy {policy!r} must be reject, flag or default") from None
    if row is None:
        session.add(MetricPolicy(metric_id=shapes.METRIC_CODES[entry.name], policy=chosen.value))
    else:
        row.policy = chosen.value
        row.updated_at = utcnow()
    session.flush()
    return chosen


def now_ms() -> int:
    """The server's clock in epoch milliseconds."""
    return shapes.datetime_to_ms(utcnow())
