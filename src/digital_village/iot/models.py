"""Tables of the net: devices, installations, readings, their daily seals, integrations, alerts.

Device tokens (``auth/models.py``) point at ``device`` by its id. Parcels are named by their
19-digit DKBM, never by a foreign key, so the net's migrations stay independent of the map's.

Reading times are integer milliseconds since the Unix epoch (UTC): the bulk paths insert
hundreds of thousands of rows a second, and a plain integer costs nothing to bind, compares
fast and is exact. Metrics are stored as the small integer codes of ``readings.METRIC_CODES``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow


class Device(Base):
    """A field sensor owned by a cooperative.

    Where it stands over time is in ``device_installation``; what it measured in ``reading``.
    """

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(ForeignKey("cooperative.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # A decoder name of ``iot.decoders`` (e.g. "DL-5TM"), or "generic" for decoded senders.
    model: Mapped[str] = mapped_column(String(100))
    # LoRaWAN DevEUI, 16 upper-case hex digits.
    dev_eui: Mapped[str | None] = mapped_column(String(16), unique=True, default=None)
    # Catalogue metric names the device reports; None: any catalogue metric.
    metrics: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class DeviceInstallation(Base):
    """A device installed on a parcel from ``installed_at`` until ``removed_at`` (exclusive).

    A move closes the open row and opens a new one, so readings keep the parcel they were taken
    on: a reading belongs to the installation whose period contains its time.
    """

    __tablename__ = "device_installation"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"), index=True)
    parcel_dkbm: Mapped[str] = mapped_column(String(19), index=True)
    lon: Mapped[float] = mapped_column(Double)
    lat: Mapped[float] = mapped_column(Double)
    installed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    ledger_seq: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("ledger_entry.seq"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reading(Base):
    """One value of one metric from one device at one millisecond: stored once, never edited."""

    __tablename__ = "reading"
    # SQLite: the primary key is the table (one B-tree instead of a table plus an index).
    __table_args__ = ({"sqlite_with_rowid": False},)

    # No foreign key to device: readings are written only by ingest, which resolves the device
    # first, and on PostgreSQL the per-row referential-integrity trigger cost 40 % of the bulk
    # insert rate (measured, docs/BENCHMARKS.md). Devices are retired, never deleted.
    device_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    time_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(Double)
    # Outside the metric's plausible range under the "flag" policy: kept, marked for review.
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    # The seal whose Merkle root covers this reading; None until its day is sealed.
    seal_id: Mapped[int | None] = mapped_column(ForeignKey("reading_seal.id"), default=None)


class ReadingDay(Base):
    """That a device has readings on a day (China Standard Time), and whether any are unsealed.

    Kept by ingest so the sealer finds its work without scanning the readings.
    """

    __tablename__ = "reading_day"

    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    pending: Mapped[bool] = mapped_column(Boolean, default=True, index=True)


class ReadingSeal(Base):
    """The Merkle root of one parcel's readings of one day, as appended to the ledger.

    Part 1 seals what had arrived when the day was first sealed; readings that come later go
    into parts 2, 3, ... A sealed root never changes.
    """

    __tablename__ = "reading_seal"
    __table_args__ = (UniqueConstraint("parcel_dkbm", "day", "part"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_dkbm: Mapped[str] = mapped_column(String(19), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    part: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    ledger_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_entry.seq"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Integration(Base):
    """A LoRaWAN network server allowed to post uplinks, known by a secret header value.

    Only the SHA-256 of the secret is kept. An integration may be limited to one cooperative's
    devices.
    """

    __tablename__ = "iot_integration"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "chirpstack" or "ttn"
    secret_hash: Mapped[str] = mapped_column(String(64))
    cooperative_id: Mapped[int | None] = mapped_column(
        ForeignKey("cooperative.id"), index=True, default=None
    )
    label: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class LorawanUplink(Base):
    """An uplink already taken in, by its network server's deduplication key."""

    __tablename__ = "lorawan_uplink"

    # "chirpstack:<deduplicationId>" or "ttn:<dev_eui>:<session_key_id>:<f_cnt>".
    dedup_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertRule(Base):
    """A threshold on one metric of one parcel: a reading below or above it raises an alert."""

    __tablename__ = "alert_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    cooperative_id: Mapped[int] = mapped_column(ForeignKey("cooperative.id"), index=True)
    parcel_dkbm: Mapped[str] = mapped_column(String(19), index=True)
    metric_id: Mapped[int] = mapped_column(SmallInteger)
    below: Mapped[float | None] = mapped_column(Double, default=None)
    above: Mapped[float | None] = mapped_column(Double, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class Alert(Base):
    """A reading that crossed a rule's threshold; raised once per rule and reading."""

    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("rule_id", "device_id", "time_ms"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rule.id"), index=True)
    cooperative_id: Mapped[int] = mapped_column(ForeignKey("cooperative.id"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"))
    parcel_dkbm: Mapped[str] = mapped_column(String(19))
    metric_id: Mapped[int] = mapped_column(SmallInteger)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Double)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)


class MetricPolicy(Base):
    """A deployment's override of a catalogue metric's out-of-range policy (reject or flag)."""

    __tablename__ = "metric_policy"

    metric_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    policy: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
