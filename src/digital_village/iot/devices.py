"""Devices: registration, where they stand over time (installations), their tokens.

Every query of ``device`` and ``device_installation`` lives here. Installing or moving a device
appends an ``iot.device.installed`` entry in the same transaction. Services never commit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import ApiToken, Role
from digital_village.db import utcnow
from digital_village.errors import Conflict, Forbidden, Invalid, NotFound
from digital_village.iot import decoders, metrics, readings, seal, shapes
from digital_village.iot.adapters import normalize_dev_eui
from digital_village.iot.models import Device, DeviceInstallation
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions

GENERIC_MODEL = "generic"


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
    owner = regions.named(regions.get_cooperative(session=session, cooperative_id=cooperative_id))
    raise Forbidden(f"parcel {dkbm} is held neither by {owner} nor by one of its members")


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


def require_manages(actor: Actor, device: Device) -> None:
    """Admin, or the manager of the device's cooperative."""
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
    require_manages(actor, device)
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
    require_manages(actor, device)
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
    require_manages(actor, device)
    active = _device_tokens(session, device_id)
    for row in active:
        auth.revoke_token(session=session, public_id=row.public_id, actor=Actor.operator())
    return len(active)


def retire_device(*, session: Session, actor: Actor, device_id: int) -> Device:
    """Take a device out of service: tokens revoked, installation closed, readings kept."""
    device = get_device(session=session, device_id=device_id)
    require_manages(actor, device)
    if device.retired_at is None:
        now = utcnow()
        revoke_tokens(session=session, actor=actor, device_id=device_id)
        current = current_installation(session=session, device_id=device_id)
        if current is not None:
            current.removed_at = now
        device.retired_at = now
        session.flush()
    return device
