"""Wire shapes of the net's API (the telemetry payloads themselves are parsed in ``shapes``)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from digital_village.iot import shapes
from digital_village.iot.models import Alert, AlertRule, Device, DeviceInstallation


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="decoder model (DL-5TM, EM500-SMTC, LSE01) or generic")
    parcel: str | None = Field(default=None, description="DKBM of the parcel it stands on")
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    dev_eui: str | None = Field(default=None, description="LoRaWAN DevEUI, 16 hex digits")
    name: str | None = Field(default=None, max_length=100)
    metrics: list[str] | None = Field(
        default=None, description="catalogue metrics it reports (default: its model's)"
    )
    cooperative: str | None = Field(
        default=None, description="admin: the owning cooperative's 统一社会信用代码 or id"
    )
    installed_at: dt.datetime | None = Field(
        default=None, description="when it was installed (default: now)"
    )


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parcel: str | None = None
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    at: dt.datetime | None = Field(default=None, description="time of the move (default: now)")


class InstallationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    parcel_dkbm: str
    lon: float
    lat: float
    installed_at: dt.datetime
    removed_at: dt.datetime | None
    ledger_seq: int | None


class DeviceOut(BaseModel):
    id: int
    cooperative_id: int
    name: str
    model: str
    dev_eui: str | None
    metrics: list[str] | None
    created_at: dt.datetime
    retired_at: dt.datetime | None
    parcel: str | None = Field(description="the parcel it stands on now")
    installations: list[InstallationOut]

    @classmethod
    def build(cls, device: Device, installations: list[DeviceInstallation]) -> DeviceOut:
        current = (
            installations[-1] if installations and installations[-1].removed_at is None else None
        )
        return cls(
            id=device.id,
            cooperative_id=device.cooperative_id,
            name=device.name,
            model=device.model,
            dev_eui=device.dev_eui,
            metrics=device.metrics,
            created_at=device.created_at,
            retired_at=device.retired_at,
            parcel=current.parcel_dkbm if current else None,
            installations=[InstallationOut.model_validate(row) for row in installations],
        )


class DeviceRegistered(DeviceOut):
    device_id: int
    token: str = Field(description="the device's bearer token; shown only this once")


class TokenOut(BaseModel):
    device_id: int
    token: str = Field(description="the new bearer token; shown only this once")


class RevokedOut(BaseModel):
    device_id: int
    revoked: int


class ProblemItem(BaseModel):
    item: str
    reason: str
    metric: str | None = None
    time: str | None = None


class IngestOut(BaseModel):
    accepted: int = Field(description="readings stored now")
    duplicates: int = Field(description="readings already stored (same device, metric, time)")
    rejected: int = Field(description="readings refused; the reasons are in rejections")
    flagged: int = Field(description="kept readings outside their metric's plausible range")
    rejections: list[ProblemItem]
    ignored: list[str] | None = Field(default=None, description="decoded keys that are no metric")


class IgnoredEvent(BaseModel):
    ignored: str = Field(description="the event or message type acknowledged and not used")


class MetricOut(BaseModel):
    name: str
    code: int
    unit: str
    label_zh: str
    label_en: str
    minimum: float
    maximum: float
    policy: str


class AlertRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parcel: str
    metric: str
    below: float | None = None
    above: float | None = None
    cooperative: str | None = None


class AlertRuleOut(BaseModel):
    id: int
    cooperative_id: int
    parcel: str
    metric: str
    below: float | None
    above: float | None
    created_at: dt.datetime
    disabled_at: dt.datetime | None

    @classmethod
    def build(cls, rule: AlertRule) -> AlertRuleOut:
        return cls(
            id=rule.id,
            cooperative_id=rule.cooperative_id,
            parcel=rule.parcel_dkbm,
            metric=shapes.METRIC_NAMES[rule.metric_id],
            below=rule.below,
            above=rule.above,
            created_at=rule.created_at,
            disabled_at=rule.disabled_at,
        )


class AlertOut(BaseModel):
    id: int
    rule_id: int
    device_id: int
    parcel: str
    metric: str
    time: str
    value: float
    created_at: dt.datetime

    @classmethod
    def build(cls, alert: Alert) -> AlertOut:
        return cls(
            id=alert.id,
            rule_id=alert.rule_id,
            device_id=alert.device_id,
            parcel=alert.parcel_dkbm,
            metric=shapes.METRIC_NAMES[alert.metric_id],
            time=shapes.ms_to_rfc3339(alert.time_ms),
            value=alert.value,
            created_at=alert.created_at,
        )


class SealOut(BaseModel):
    parcel: str
    day: dt.date
    part: int
    count: int
    root: str
    ledger_seq: int
    verified: bool = Field(description="the stored readings still hash to the sealed root")
