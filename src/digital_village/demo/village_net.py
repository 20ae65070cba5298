"""The sample village's sensors for ``dv demo``: three soil probes and a season of readings.

Readings are generated, not measured, but shaped like a Deyang field: soil temperature follows
the season (about 8 °C in January, 27 °C in late July) with a daily swing peaking mid-afternoon;
soil moisture dries out between rain events (more in summer) and jumps after rain; EC follows
moisture; batteries sag slowly. The random numbers are seeded, so every demo shows the same
season. Every finished day is then sealed into the ledger, as the server would have done.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.iot import devices, readings, seal, shapes
from digital_village.iot.models import Device
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions

STEP_MINUTES = 30
DEMO_PREFIX = "demo "
# (model, device name, index among the members' parcels by DKBM): the first two rapeseed
# fields of the sample season and its first rice field.
PROBES = (
    ("DL-5TM", "demo 油菜田 probe 1", 0),
    ("EM500-SMTC", "demo 油菜田 probe 2", 1),
    ("LSE01", "demo 稻田 probe", 30),
)
EUIS = {"DL-5TM": "70B3D57BA0DE0001", "EM500-SMTC": "24E124126BDE0002", "LSE01": "A840410000DE0003"}


@dataclass
class NetSummary:
    """What the demo's net holds."""

    devices: list[tuple[int, str, str]] = field(default_factory=list)  # id, model, parcel
    readings: int = 0
    seals: int = 0
    already_loaded: bool = False
    skipped: str | None = None


def season_start(today: dt.date) -> dt.date:
    """Before the sowing of the last rapeseed harvested (as demo.village_season counts it)."""
    harvest_year = today.year if today >= dt.date(today.year, 6, 20) else today.year - 1
    return dt.date(harvest_year - 1, 9, 20)


def _members_parcels(session: Session, cooperative_id: int, on: dt.date) -> list[str]:
    found: list[str] = []
    members: dict[int, bool] = {}
    for parcel in parcels.list_all_active(session=session):
        household = parcels.holder_at(
            session=session, dkbm=parcel.dkbm, on=on
        ).contractor_household_id
        if household is None:
            continue
        if household not in members:
            row = regions.get_household(session=session, household_id=household)
            members[household] = row.cooperative_id == cooperative_id
        if members[household]:
            found.append(parcel.dkbm)
    return sorted(found)


def _rain_days(rng: random.Random, first: dt.date, days: int) -> dict[dt.date, float]:
    """Rain per day in mm: more frequent and heavier in the summer monsoon."""
    rain: dict[dt.date, float] = {}
    for n in range(days):
        day = first + dt.timedelta(days=n)
        summer = 6 <= day.month <= 9
        if rng.random() < (0.22 if summer else 0.09):
            rain[day] = round(rng.uniform(4, 55 if summer else 20), 1)
    return rain


def generate(
    *, device_id: int, model: str, start: dt.datetime, end: dt.datetime, seed: int
) -> list[readings.InsertRow]:
    """Plausible readings of one probe every 30 minutes in [start, end)."""
    rng = random.Random(seed)
    first = start.astimezone(readings.CHINA_TIME).date()
    days = (end - start).days + 2
    rain = _rain_days(random.Random(7), first, days)  # one weather for the whole village
    code = shapes.METRIC_CODES
    rows: list[readings.InsertRow] = []
    moisture = 32.0 + rng.uniform(-2, 2)
    step = dt.timedelta(minutes=STEP_MINUTES)
    moment = start
    battery = 3.65
    while moment < end:
        local = moment.astimezone(readings.CHINA_TIME)
        day_of_year = local.timetuple().tm_yday
        seasonal = 17.5 - 9.5 * math.cos(2 * math.pi * (day_of_year - 25) / 365)
        hour = local.hour + local.minute / 60
        daily = 3.2 * math.sin(2 * math.pi * (hour - 9) / 24)
        temperature = seasonal + daily + rng.gauss(0, 0.25)
        if local.hour == 6 and local.minute < STEP_MINUTES and local.date() in rain:
            moisture = min(45.0, moisture + rain[local.date()] * 0.3)
        evaporation = 0.0012 * max(0.0, temperature - 5) * (1.6 if 10 <= hour <= 17 else 0.4)
        # Plants and sun take less as the soil dries (wilting point near 8 %).
        drying = evaporation * min(1.0, (moisture - 8) / 16) + 0.0006 * (moisture - 18)
        moisture = max(9.0, moisture - drying)
        value = round(moisture + rng.gauss(0, 0.15), 2)
        time_ms = shapes.datetime_to_ms(moment)
        rows.append((device_id, code["soil_moisture"], time_ms, value, False))
        rows.append((device_id, code["soil_temperature"], time_ms, round(temperature, 2), False))
        if model in ("EM500-SMTC", "LSE01"):
            ec = 0.12 + 0.011 * moisture + rng.gauss(0, 0.01)
            rows.append((device_id, code["soil_ec"], time_ms, round(ec, 3), False))
        if model in ("DL-5TM", "LSE01") and local.minute < STEP_MINUTES and local.hour % 6 == 0:
            battery -= 0.00025
            rows.append((device_id, code["battery"], time_ms, round(battery, 3), False))
        moment += step
    return rows


def record_sample_net(
    *, session: Session, ledger: Ledger, cooperative_id: int, today: dt.date
) -> NetSummary:
    """Install the demo's probes, load their season and seal its finished days; once."""
    summary = NetSummary()
    existing = session.scalars(
        select(Device).where(Device.name.startswith(DEMO_PREFIX)).order_by(Device.id)
    ).all()
    if existing:
        summary.already_loaded = True
        for device in existing:
            current = devices.current_installation(session=session, device_id=device.id)
            summary.devices.append(
                (device.id, device.model, current.parcel_dkbm if current else "")
            )
        return summary
    first_day = season_start(today)
    fields = _members_parcels(session, cooperative_id, first_day)
    if len(fields) <= max(index for _, _, index in PROBES):
        summary.skipped = f"only {len(fields)} member parcels; the sample probes need 31"
        return summary
    installed = dt.datetime(
        first_day.year, first_day.month, first_day.day, 10, tzinfo=readings.CHINA_TIME
    )
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    end = now - dt.timedelta(minutes=now.minute % STEP_MINUTES)
    operator = Actor.operator()
    batches: list[readings.InsertRow] = []
    for model, name, index in PROBES:
        made = devices.register_device(
            session=session,
            ledger=ledger,
            actor=operator,
            model=model,
            parcel=fields[index],
            dev_eui=EUIS[model],
            name=name,
            cooperative=str(cooperative_id),
            installed_at=installed,
        )
        summary.devices.append((made.device.id, model, fields[index]))
        start = installed + dt.timedelta(minutes=STEP_MINUTES)
        batches.extend(
            generate(
                device_id=made.device.id, model=model, start=start, end=end, seed=made.device.id
            )
        )
    with shapes.gc_paused():
        for offset in range(0, len(batches), 50_000):
            summary.readings += readings.insert_many(session, batches[offset : offset + 50_000])
    summary.seals = len(seal.seal_days(session=session, ledger=ledger))
    return summary
