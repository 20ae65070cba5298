"""Devices, their installations and tokens, and the ingest of checked readings.

Every query of ``device`` and ``device_installation`` lives here; readings go through
``iot.readings``. Services never commit: one request or one CLI command is one transaction,
so an installation and its ledger entry, or a batch of readings and its alerts, commit together.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import shapely
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import ApiToken, Role
from digital_village.db import utcnow
from digital_village.errors import Conflict, Forbidden, Invalid, NotFound
from digital_village.iot import alerts, decoders, metrics, readings, seal, shapes
from digital_village.iot.adapters import normalize_dev_eui
from digital_village.iot.models import Device, DeviceInstallation, MetricPolicy
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions

GENERIC_MODEL = "generic"
_METRIC_OF = itemgetter(1)
_TIME_OF = itemgetter(2)


def known_models() -> tuple[str, ...]:
    """Device models a device may be registered as: the decoders' and ``generic``."""
    return (*decoders.known_models(), GENERIC_MODEL)


def _model_name(model: str) -> str:
    wanted = model.strip().casefold()
    for name in known_models():
        if name.casefold() == wanted:
            return name
    raise Invalid(
        f"unknown device model {model!r}; known models: {', '.join(known_models())}",
        known=list(known_models()),
    )


def default_metrics(model: str) -> list[str] | None:
    """The metrics a model's decoder produces (None for ``generic``: any catalogue metric)."""
    return {
        "DL-5TM": ["soil_moisture", "soil_temperature", "battery"],
        "EM500-SMTC": ["soil_moisture", "soil_temperature", "soil_ec"],
        "LSE01": ["soil_moisture", "soil_temperature", "soil_ec", "battery"],
    }.get(model)


def _metric_list(names: Sequence[str] | None, model: str) -> list[str] | None:
    if not names:
        return default_metrics(model)
    chosen: list[str] = []
    for name in names:
        try:
            metrics.get_metric(name.strip())
        except metrics.UnknownMetricError as error:
            raise Invalid(str(error), known=list(error.known)) from None
        if name.strip() not in chosen:
            chosen.append(name.strip())
    return chosen


# --- where a device stands -------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """A parcel and a point on it, checked against the map."""

    dkbm: str
    lon: float
    lat: float


def place(*, session: Session, dkbm: str | None, lon: float | None, lat: float | None) -> Placement:
    """Check that a point lies on an active parcel (or find the parcel, or pick a point).

    With a parcel and no point, the device is placed at a point inside the parcel; with a point
    and no parcel, the parcel is the one under the point.
    """
    if (lon is None) != (lat is None):
        raise Invalid("give both lon and lat, or neither")
    if dkbm is None:
        if lon is None or lat is None:
            raise Invalid("say where the device is: a parcel (DKBM), a lon/lat point, or both")
        found = parcels.parcel_containing_point(session=session, lon=lon, lat=lat)
        if found is None:
            raise Invalid(f"no active parcel lies under lon {lon}, lat {lat}")
        return Placement(found.dkbm, lon, lat)
    parcel = parcels.get_active_parcel(session=session, dkbm=dkbm)
    shape = parcels.parcel_geometry(parcel)
    if lon is None or lat is None:
        point = shape.representative_point()
        return Placement(parcel.dkbm, float(point.x), float(point.y))
    if not shapely.intersects_xy(shape, lon, lat):
        distance_m = _distance_m(shape, lon, lat)
        raise Invalid(
            f"the point lon {lon}, lat {lat} is not on parcel {parcel.dkbm} "
            f"(about {distance_m:.0f} m outside it)",
            parcel=parcel.dkbm,
        )
    return Placement(parcel.dkbm, lon, lat)


def _distance_m(shape: Any, lon: float, lat: float) -> float:
    # Degrees to metres near the point: good enough to tell a person how far off they are.
    nearest = shapely.shortest_line(shapely.Point(lon, lat), shape).coords[1]
    dx = (nearest[0] - lon) * 111_320 * math.cos(math.radians(lat))
    dy = (nearest[1] - lat) * 110_540
    return math.hypot(dx, dy)


def _check_parcel_scope(
    *, session: Session, actor: Actor, dkbm: str, cooperative_id: int, on: dt.date
) -> None:
    """A manager installs only on land its cooperative or one of its members holds.

    Parcels with no holder on record are open to any cooperative.
    """
    if actor.is_admin:
        return
    holding = parcels.holder_at(session=session, dkbm=dkbm, on=on)
    if holding.operator_cooperative_id is None and holding.contractor_household_id is None:
        return
    if holding.operator_cooperative_id == cooperative_id:
        return
    if holding.contractor_household_id is not None:
        household = regions.get_household(
            session=session, household_id=holding.contractor_household_id
        )
        if household.cooperative_id == cooperative_id:
            return
    raise Forbidden(
        f"parcel {dkbm} is held neither by cooperative {cooperative_id} nor by one of its members"
    )


# --- devices -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredDevice:
    """A device just registered (or given a new token): the token exists only here."""

    device: Device
    installation: DeviceInstallation
    token: str


def get_device(*, session: Session, device_id: int) -> Device:
    """A device by id."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device with id {device_id}")
    return device


def find_device_by_eui(*, session: Session, dev_eui: str) -> Device:
    """A LoRaWAN device by its DevEUI."""
    device = session.scalar(select(Device).where(Device.dev_eui == dev_eui))
    if device is None:
        raise NotFound(
            f"no device with DevEUI {dev_eui}; register it with "
            f"`dv devices add --dev-eui {dev_eui} ...`",
            dev_eui=dev_eui,
        )
    return device


def _require_manages(actor: Actor, device: Device) -> None:
    actor.require_cooperative(device.cooperative_id)


def list_devices(*, session: Session, actor: Actor) -> Sequence[Device]:
    """Devices: all for an admin, its cooperative's for a manager."""
    query = select(Device).order_by(Device.id)
    if not actor.is_admin:
        actor.require_role(Role.MANAGER)
        query = query.where(Device.cooperative_id == actor.cooperative_id)
    return session.scalars(query).all()


def register_device(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    model: str,
    parcel: str | None,
    lon: float | None = None,
    lat: float | None = None,
    dev_eui: str | None = None,
    name: str | None = None,
    metric_names: Sequence[str] | None = None,
    cooperative: str | None = None,
    installed_at: dt.datetime | None = None,
) -> RegisteredDevice:
    """Register a device installed on a parcel and issue its token (shown once).

    A manager registers for its own cooperative; an admin names the cooperative (or takes the
    parcel's operator).
    """
    actor.require_role(Role.MANAGER)
    model_name = _model_name(model)
    chosen_metrics = _metric_list(metric_names, model_name)
    eui = None
    if dev_eui is not None and dev_eui.strip():
        try:
            eui = normalize_dev_eui(dev_eui)
        except shapes.PayloadError as error:
            raise Invalid(str(error)) from None
        clash = session.scalar(select(Device.id).where(Device.dev_eui == eui))
        if clash is not None:
            raise Conflict(f"DevEUI {eui} is already registered to device {clash}", device=clash)
    when = installed_at or utcnow()
    if when.tzinfo is None:
        raise Invalid("installed_at needs a UTC offset")
    if when > utcnow() + dt.timedelta(minutes=5):
        raise Invalid("installed_at lies in the future")
    placement = place(session=session, dkbm=parcel, lon=lon, lat=lat)
    cooperative_id = _cooperative_for(
        session=session, actor=actor, cooperative=cooperative, dkbm=placement.dkbm, on=when
    )
    _check_parcel_scope(
        session=session,
        actor=actor,
        dkbm=placement.dkbm,
        cooperative_id=cooperative_id,
        on=when.astimezone(readings.CHINA_TIME).date(),
    )
    device = Device(
        cooperative_id=cooperative_id,
        name=(name or f"{model_name} {eui or ''}").strip()[:100],
        model=model_name,
        dev_eui=eui,
        metrics=chosen_metrics,
    )
    session.add(device)
    session.flush()
    installation = _install(
        session=session, ledger=ledger, device=device, placement=placement, at=when
    )
    issued = auth.issue_token(
        session=session,
        role=Role.DEVICE,
        actor=Actor.operator(),  # scope checked above; a manager may not mint tokens itself
        scope=auth.TokenScope(device_id=device.id, cooperative_id=device.cooperative_id),
        label=f"device {device.id}",
    )
    return RegisteredDevice(device, installation, issued.token)


def _cooperative_for(
    *, session: Session, actor: Actor, cooperative: str | None, dkbm: str, on: dt.datetime
) -> int:
    if cooperative is not None:
        found = regions.find_cooperative(session=session, key=cooperative).id
        actor.require_cooperative(found)
        return found
    if actor.role is Role.MANAGER and actor.cooperative_id is not None:
        return actor.cooperative_id
    holding = parcels.holder_at(
        session=session, dkbm=dkbm, on=on.astimezone(readings.CHINA_TIME).date()
    )
    if holding.operator_cooperative_id is not None:
        return holding.operator_cooperative_id
    if holding.contractor_household_id is not None:
        household = regions.get_household(
            session=session, household_id=holding.contractor_household_id
        )
        if household.cooperative_id is not None:
            return household.cooperative_id
    known = regions.list_cooperatives(session=session)
    if len(known) == 1:
        return known[0].id
    raise Invalid(
        f"parcel {dkbm} has no operating cooperative on record; name the cooperative that owns "
        "the device (cooperative / --coop)"
    )


def _install(
    *,
    session: Session,
    ledger: Ledger,
    device: Device,
    placement: Placement,
    at: dt.datetime,
) -> DeviceInstallation:
    installation = DeviceInstallation(
        device_id=device.id,
        parcel_dkbm=placement.dkbm,
        lon=placement.lon,
        lat=placement.lat,
        installed_at=at,
    )
    session.add(installation)
    session.flush()
    entry = ledger.append(
        session,
        kind="iot.device.installed",
        data={
            "device": device.id,
            "model": device.model,
            "dev_eui": device.dev_eui,
            "cooperative": device.cooperative_id,
            "parcel": placement.dkbm,
            "lon": placement.lon,
            "lat": placement.lat,
            "installed_at": shapes.ms_to_rfc3339(shapes.datetime_to_ms(at)),
            "metrics": device.metrics,
        },
        chain_key=f"device:{device.id}",
    )
    installation.ledger_seq = entry.seq
    session.flush()
    return installation


# Built once: ingest runs it for every batch, and building a statement costs more than running it.
_INSTALLATIONS_OF = (
    select(DeviceInstallation)
    .where(DeviceInstallation.device_id == bindparam("device_id"))
    .order_by(DeviceInstallation.installed_at, DeviceInstallation.id)
)
_METRIC_POLICIES = select(MetricPolicy.metric_id, MetricPolicy.policy)


def installations(*, session: Session, device_id: int) -> Sequence[DeviceInstallation]:
    """A device's installations, oldest first."""
    return session.scalars(_INSTALLATIONS_OF, {"device_id": device_id}).all()


def current_installation(*, session: Session, device_id: int) -> DeviceInstallation | None:
    """The installation in force now, if the device stands anywhere."""
    rows = installations(session=session, device_id=device_id)
    return rows[-1] if rows and rows[-1].removed_at is None else None


def installations_on(
    *, session: Session, dkbm: str, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Sequence[DeviceInstallation]:
    """Installations on a parcel overlapping [start, end)."""
    query = select(DeviceInstallation).where(DeviceInstallation.parcel_dkbm == dkbm)
    if end is not None:
        query = query.where(DeviceInstallation.installed_at < end)
    if start is not None:
        query = query.where(
            (DeviceInstallation.removed_at.is_(None)) | (DeviceInstallation.removed_at > start)
        )
    return session.scalars(query.order_by(DeviceInstallation.installed_at)).all()


def move_device(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    device_id: int,
    parcel: str | None,
    lon: float | None = None,
    lat: float | None = None,
    at: dt.datetime | None = None,
) -> DeviceInstallation:
    """Move a device to another place; readings taken before ``at`` stay on the old parcel."""
    device = get_device(session=session, device_id=device_id)
    _require_manages(actor, device)
    if device.retired_at is not None:
        raise Conflict(f"device {device_id} was retired")
    when = at or utcnow()
    if when.tzinfo is None:
        raise Invalid("the time of the move needs a UTC offset")
    if when > utcnow() + dt.timedelta(minutes=5):
        raise Invalid("the time of the move lies in the future")
    current = current_installation(session=session, device_id=device_id)
    if current is not None and when <= current.installed_at:
        raise Invalid(
            f"device {device_id} was installed at {current.installed_at.isoformat()}; "
            "a move must come after that"
        )
    sealed_until = seal.last_sealed_day(session=session, device_id=device_id)
    if (
        sealed_until is not None
        and shapes.datetime_to_ms(when) < readings.day_bounds_ms(sealed_until)[1]
    ):
        raise Invalid(
            f"device {device_id} has readings sealed up to {sealed_until.isoformat()} "
            "(China Standard Time); a move must come after that day"
        )
    placement = place(session=session, dkbm=parcel, lon=lon, lat=lat)
    _check_parcel_scope(
        session=session,
        actor=actor,
        dkbm=placement.dkbm,
        cooperative_id=device.cooperative_id,
        on=when.astimezone(readings.CHINA_TIME).date(),
    )
    if current is not None:
        current.removed_at = when
    return _install(session=session, ledger=ledger, device=device, placement=placement, at=when)


def _device_tokens(session: Session, device_id: int) -> list[ApiToken]:
    return [row for row in auth.list_tokens(session=session) if row.device_id == device_id]


def rotate_token(*, session: Session, actor: Actor, device_id: int) -> str:
    """Revoke the device's tokens and issue a new one (shown once)."""
    device = get_device(session=session, device_id=device_id)
    _require_manages(actor, device)
    if device.retired_at is not None:
        raise Conflict(f"device {device_id} was retired")
    revoke_tokens(session=session, actor=actor, device_id=device_id)
    issued = auth.issue_token(
        session=session,
        role=Role.DEVICE,
        actor=Actor.operator(),
        scope=auth.TokenScope(device_id=device.id, cooperative_id=device.cooperative_id),
        label=f"device {device.id}",
    )
    return issued.token


def revoke_tokens(*, session: Session, actor: Actor, device_id: int) -> int:
    """Revoke every token of the device at once; return how many were active."""
    device = get_device(session=session, device_id=device_id)
    _require_manages(actor, device)
    active = _device_tokens(session, device_id)
    for row in active:
        auth.revoke_token(session=session, public_id=row.public_id, actor=Actor.operator())
    return len(active)


def retire_device(*, session: Session, actor: Actor, device_id: int) -> Device:
    """Take a device out of service: tokens revoked, installation closed, readings kept."""
    device = get_device(session=session, device_id=device_id)
    _require_manages(actor, device)
    if device.retired_at is None:
        now = utcnow()
        revoke_tokens(session=session, actor=actor, device_id=device_id)
        current = current_installation(session=session, device_id=device_id)
        if current is not None:
            current.removed_at = now
        device.retired_at = now
        session.flush()
    return device


# --- ingest ------------------------------------------------------------------------------------


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
        for row in installations(session=session, device_id=device.id)
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
        return get_device(session=session, device_id=actor.device_id)
    actor.require_role(Role.MANAGER)
    if device_id is None:
        raise Invalid("name the device the readings are from (device_id)")
    device = get_device(session=session, device_id=device_id)
    _require_manages(actor, device)
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
    if checked.device_id is not None and checked.device_id != device.id:
        raise Forbidden(
            f"the payload names device {checked.device_id}, but it is sent for device {device.id}"
        )
    context = device_context(session=session, device=device)
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
