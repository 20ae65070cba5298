"""The console's members, their invitations, and the cooperative's devices.

Members are the cooperative's households (``regions.list_households``: a manager sees its own),
their names masked as on every page, with the parcels each holds today. An invitation is the
sign-in link ``dv farmers invite`` prints (a farmer token made by ``tokens.service.issue_token``,
which lets a manager make one for its own members) shown as a QR code for the farmer's phone.
Devices are ``iot.devices.list_devices``'s, with each one's newest reading of every metric and
the cooperative's alerts nobody has acknowledged.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from digital_village.auth.models import Role
from digital_village.iot import alerts, devices, metrics, readings, shapes
from digital_village.iot.models import Alert, Device
from digital_village.labels import qr
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from digital_village.tokens import service as tokens
from digital_village.trace.builders import CHINA
from digital_village.web.manage_context import Console
from digital_village.web.manage_forms import Done, Form, Mistakes

OPEN_ALERTS: Final = 50
INVITE_QR_MM: Final = 50.0


@dataclass
class Member:
    id: int
    cbfbm: str
    name: str  # masked
    parcels: list[tuple[str, float]] = field(default_factory=list)  # DKBM, 亩


def _members(console: Console) -> list[Member]:
    found = {
        household.id: Member(household.id, household.cbfbm, regions.mask_name(household.name))
        for household in regions.list_households(session=console.session, actor=console.actor)
    }
    held = parcels.held_on(
        session=console.session,
        household_ids=list(found),
        cooperative_id=None,
        on=parcels.today(),
    )
    for row in held:
        member = found.get(row.holding.contractor_household_id or 0)
        if member is not None:
            member.parcels.append((row.dkbm, row.area_mu))
    return list(found.values())


def members_view(console: Console, form: Form, mistakes: Mistakes, check: bool) -> dict[str, Any]:
    """The cooperative's households, masked, with the parcels they hold today."""
    del form, mistakes, check
    return {"members": _members(console)}


def invite(console: Console, ledger: Ledger, form: Form, mistakes: Mistakes) -> Done | None:
    """A member's farmer sign-in link, as ``dv farmers invite`` makes it, and its QR code."""
    del ledger  # a token is not a ledger record
    members = {str(member.id): member for member in _members(console)}
    member = members.get(form.text("household"))
    if member is None:
        mistakes.add("household", "err_household")
        return None
    issued = tokens.issue_token(
        session=console.session,
        role=Role.FARMER,
        actor=console.actor,
        household=member.cbfbm,
        label=f"invite {member.cbfbm}",
    )
    base = console.base_url.rstrip("/")
    held = sorted(dkbm for dkbm, _ in member.parcels)
    # The token after '#' never reaches a server; the parcel page keeps it on the phone.
    link = f"{base}/p/{held[0]}#token={issued.token}" if held else issued.token
    svg = qr.svg(link, size_mm=INVITE_QR_MM, error_correction=qr.LABEL_ERROR_CORRECTION)
    image = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
    title = console.m["invite_title"].format(name=member.name)
    return Done(seqs=[], lines=[title, member.cbfbm], links=[], qr_svg=image, secret=link)


@dataclass
class DeviceRow:
    device: Device
    parcel: str | None
    latest: list[tuple[str, str, str]]  # metric, value with unit, China time


def _china_time(time_ms: int) -> str:
    return dt.datetime.fromtimestamp(time_ms / 1000, CHINA).strftime("%Y-%m-%d %H:%M")


def _metric(metric_id: int, language: str) -> tuple[str, str]:
    """A metric's label in the language, and its unit."""
    name = shapes.METRIC_NAMES.get(metric_id, str(metric_id))
    found = metrics.CATALOGUE.get(name)
    if found is None:
        return name, ""
    return (found.label_en if language == "en" else found.label_zh), found.unit


def _device_row(console: Console, device: Device) -> DeviceRow:
    installed = devices.current_installation(session=console.session, device_id=device.id)
    # The device's own metrics when it names them: one query a metric.
    wanted = [
        shapes.METRIC_CODES[name] for name in device.metrics or [] if name in shapes.METRIC_CODES
    ]
    newest = readings.latest(
        console.session, device_id=device.id, metric_ids=wanted or list(shapes.METRIC_NAMES)
    )
    latest = []
    for reading in newest:
        name, unit = _metric(reading.metric_id, console.language)
        latest.append((name, f"{reading.value:g} {unit}".strip(), _china_time(reading.time_ms)))
    return DeviceRow(device, installed.parcel_dkbm if installed else None, latest)


@dataclass(frozen=True)
class AlertRow:
    alert: Alert
    metric: str
    value: str
    time: str


def devices_view(console: Console, form: Form, mistakes: Mistakes, check: bool) -> dict[str, Any]:
    """The cooperative's devices with their latest readings, and its open alerts."""
    del form, mistakes, check
    rows = [
        _device_row(console, device)
        for device in devices.list_devices(session=console.session, actor=console.actor)
        if device.retired_at is None
    ]
    raised = alerts.list_alerts(session=console.session, actor=console.actor, limit=OPEN_ALERTS)
    open_alerts = []
    for alert in raised:
        if alert.acknowledged_at is not None:
            continue
        name, unit = _metric(alert.metric_id, console.language)
        value = f"{alert.value:g} {unit}".strip()
        open_alerts.append(AlertRow(alert, name, value, _china_time(alert.time_ms)))
    return {"devices": rows, "alerts": open_alerts}
