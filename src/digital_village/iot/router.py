"""HTTP routes of the net: devices, readings, seals, alerts (JSON only).

What devices and network servers send (telemetry, LoRaWAN integrations) is in
``iot.ingest_router``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from digital_village.api.deps import JSON_BODY, SessionDep
from digital_village.auth.dependencies import ActorDep
from digital_village.errors import Invalid
from digital_village.iot import (
    alerts,
    devices,
    ingest,
    metrics,
    queries,
    seal,
    shapes,
)
from digital_village.iot.schemas import (
    AlertOut,
    AlertRuleIn,
    AlertRuleOut,
    DeviceIn,
    DeviceOut,
    DeviceRegistered,
    InstallationOut,
    MetricOut,
    MoveIn,
    RevokedOut,
    SealOut,
    TokenOut,
)
from digital_village.ledger.dependencies import LedgerDep

router = APIRouter(prefix="/api/v1", tags=["iot"])

# --- devices ---------------------------------------------------------------------------------


def _device_out(session: Any, device_id: int) -> DeviceOut:
    device = devices.get_device(session=session, device_id=device_id)
    rows = list(devices.installations(session=session, device_id=device.id))
    return DeviceOut.build(device, rows)


@router.post("/devices", response_model=DeviceRegistered, status_code=201, dependencies=JSON_BODY)
def register_device(
    body: DeviceIn, session: SessionDep, actor: ActorDep, ledger: LedgerDep
) -> DeviceRegistered:
    """Register a device on a parcel (manager of its cooperative, admin); its token, once."""
    made = devices.register_device(
        session=session,
        ledger=ledger,
        actor=actor,
        model=body.model,
        parcel=body.parcel,
        lon=body.lon,
        lat=body.lat,
        dev_eui=body.dev_eui,
        name=body.name,
        metric_names=body.metrics,
        cooperative=body.cooperative,
        installed_at=body.installed_at,
    )
    out = DeviceOut.build(made.device, [made.installation])
    return DeviceRegistered(**out.model_dump(), device_id=made.device.id, token=made.token)


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(session: SessionDep, actor: ActorDep) -> list[DeviceOut]:
    """Devices: all for an admin, its cooperative's for a manager."""
    return [
        DeviceOut.build(device, list(devices.installations(session=session, device_id=device.id)))
        for device in devices.list_devices(session=session, actor=actor)
    ]


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: int, session: SessionDep) -> DeviceOut:
    """One device with its installation history (public: where sensors stand is no secret)."""
    return _device_out(session, device_id)


@router.post(
    "/devices/{device_id}/moves",
    response_model=InstallationOut,
    status_code=201,
    dependencies=JSON_BODY,
)
def move_device(
    device_id: int, body: MoveIn, session: SessionDep, actor: ActorDep, ledger: LedgerDep
) -> InstallationOut:
    """Move a device; its earlier readings stay on the parcel they were taken on."""
    installation = devices.move_device(
        session=session,
        ledger=ledger,
        actor=actor,
        device_id=device_id,
        parcel=body.parcel,
        lon=body.lon,
        lat=body.lat,
        at=body.at,
    )
    return InstallationOut.model_validate(installation)


@router.post(
    "/devices/{device_id}/token", response_model=TokenOut, status_code=201, dependencies=JSON_BODY
)
def rotate_token(device_id: int, session: SessionDep, actor: ActorDep) -> TokenOut:
    """Revoke the device's tokens and issue a new one (shown once)."""
    token = devices.rotate_token(session=session, actor=actor, device_id=device_id)
    return TokenOut(device_id=device_id, token=token)


@router.delete("/devices/{device_id}/token", response_model=RevokedOut, dependencies=JSON_BODY)
def revoke_tokens(device_id: int, session: SessionDep, actor: ActorDep) -> RevokedOut:
    """Revoke every token of the device at once."""
    count = devices.revoke_tokens(session=session, actor=actor, device_id=device_id)
    return RevokedOut(device_id=device_id, revoked=count)


@router.delete("/devices/{device_id}", response_model=DeviceOut, dependencies=JSON_BODY)
def retire_device(device_id: int, session: SessionDep, actor: ActorDep) -> DeviceOut:
    """Retire a device: tokens revoked, installation closed; its readings are kept."""
    devices.retire_device(session=session, actor=actor, device_id=device_id)
    return _device_out(session, device_id)


# --- readings ----------------------------------------------------------------------------------


@router.get("/metrics", response_model=list[MetricOut])
def list_metrics(session: SessionDep) -> list[MetricOut]:
    """The metric catalogue: names, units, plausible ranges and out-of-range policies in force."""
    overrides = ingest.metric_policies(session=session) or {}
    return [
        MetricOut(
            name=entry.name,
            code=shapes.METRIC_CODES[entry.name],
            unit=entry.unit,
            label_zh=entry.label_zh,
            label_en=entry.label_en,
            minimum=entry.minimum,
            maximum=entry.maximum,
            policy=overrides.get(entry.name, entry.policy).value,
        )
        for entry in metrics.CATALOGUE.values()
    ]


@router.get("/devices/{device_id}/readings")
def device_readings(
    device_id: int,
    session: SessionDep,
    actor: ActorDep,
    metric: Annotated[str, Query(description="a catalogue metric, e.g. soil_moisture")],
    start: Annotated[str | None, Query(alias="from", description="RFC 3339 or epoch ms")] = None,
    end: Annotated[str | None, Query(alias="to", description="RFC 3339 or epoch ms")] = None,
    bucket: Annotated[str | None, Query(description="downsample: 15m, 1h, 1d ...")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_RAW_POINTS)] = 10_000,
) -> dict[str, Any]:
    """A device's readings of one metric in [from, to), raw or per bucket (min/max/mean/count).

    Day buckets are China Standard Time days. For an admin, the manager of the device's
    cooperative or the device itself; consumers get the parcels' daily conditions.
    """
    return queries.device_readings(
        session=session,
        actor=actor,
        device_id=device_id,
        metric=metric,
        start=start,
        end=end,
        bucket=bucket,
        limit=limit,
    )


@router.get("/devices/{device_id}/latest")
def latest_values(device_id: int, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The newest reading of each metric of a device (its cooperative, an admin, itself)."""
    return queries.latest_values(session=session, actor=actor, device_id=device_id)


@router.get("/devices/{device_id}/readings/proof")
def reading_proof(
    device_id: int,
    session: SessionDep,
    actor: ActorDep,
    metric: str,
    time: Annotated[str, Query(description="the reading's time, RFC 3339 or epoch ms")],
) -> dict[str, Any]:
    """Proof that a sealed reading is in its day's Merkle root, and that root in the ledger.

    Check it offline with `dv iot verify-reading FILE --vkey KEY`. It shows the raw reading, so
    it is for the device's cooperative, an admin or the device itself.
    """
    queries.readable_device(session=session, actor=actor, device_id=device_id)
    instant = queries.parse_instant(time, "time")
    if instant is None:
        raise Invalid("time: give the reading's time, RFC 3339 or epoch milliseconds")
    return seal.reading_proof(session=session, device_id=device_id, metric=metric, time_ms=instant)


@router.get("/parcels/{dkbm}/readings")
def parcel_readings(
    dkbm: str,
    session: SessionDep,
    actor: ActorDep,
    metric: str,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    bucket: str | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_RAW_POINTS)] = 10_000,
) -> dict[str, Any]:
    """One metric on a parcel, from the devices installed there while they were: every one for
    an admin, its own cooperative's for a manager (the daily conditions are public)."""
    return queries.parcel_readings(
        session=session,
        actor=actor,
        dkbm=dkbm,
        metric=metric,
        start=start,
        end=end,
        bucket=bucket,
        limit=limit,
    )


@router.get("/parcels/{dkbm}/conditions")
def parcel_conditions(
    dkbm: str,
    session: SessionDep,
    start: Annotated[dt.date | None, Query(alias="from", description="first day")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="last day")] = None,
    metric: Annotated[
        list[str] | None, Query(description="default: soil moisture, temperature")
    ] = None,
) -> dict[str, Any]:
    """Growing conditions per day (min / mean / max), with each day's seal in the ledger."""
    return queries.parcel_daily(
        session=session, dkbm=dkbm, first=start, last=end, metric_names=metric
    )


@router.get("/parcels/{dkbm}/seals", response_model=list[SealOut])
def parcel_seals(dkbm: str, session: SessionDep, day: dt.date | None = None) -> list[SealOut]:
    """The parcel's sealed days, each re-checked against the readings stored now."""
    found = []
    for made in seal.seals_of(session=session, dkbm=dkbm, day=day):
        check = seal.check_seal(session=session, seal=made)
        found.append(
            SealOut(
                parcel=made.parcel_dkbm,
                day=made.day,
                part=made.part,
                count=made.count,
                root=made.root_hash.hex(),
                ledger_seq=made.ledger_seq,
                verified=check.ok,
            )
        )
    return found


# --- alerts ------------------------------------------------------------------------------------


@router.post("/alert-rules", response_model=AlertRuleOut, status_code=201, dependencies=JSON_BODY)
def add_alert_rule(body: AlertRuleIn, session: SessionDep, actor: ActorDep) -> AlertRuleOut:
    """A threshold on a parcel's metric (manager, admin): readings past it raise alerts."""
    rule = alerts.add_rule(
        session=session,
        actor=actor,
        dkbm=body.parcel,
        metric=body.metric,
        below=body.below,
        above=body.above,
        cooperative=body.cooperative,
    )
    return AlertRuleOut.build(rule)


@router.get("/alert-rules", response_model=list[AlertRuleOut])
def list_alert_rules(session: SessionDep, actor: ActorDep) -> list[AlertRuleOut]:
    """Active alert rules of the cooperative (all for an admin)."""
    return [AlertRuleOut.build(rule) for rule in alerts.list_rules(session=session, actor=actor)]


@router.delete("/alert-rules/{rule_id}", response_model=AlertRuleOut, dependencies=JSON_BODY)
def disable_alert_rule(rule_id: int, session: SessionDep, actor: ActorDep) -> AlertRuleOut:
    """Stop a rule; the alerts it raised are kept."""
    return AlertRuleOut.build(alerts.disable_rule(session=session, actor=actor, rule_id=rule_id))


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    session: SessionDep,
    actor: ActorDep,
    parcel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AlertOut]:
    """Alerts raised for the cooperative (all for an admin), newest first."""
    rows = alerts.list_alerts(session=session, actor=actor, dkbm=parcel, limit=limit)
    return [AlertOut.build(row) for row in rows]
