"""Tables of the chain: products, lots and serial units, EPCIS events, captures, lineage edges.

Events are keyed by a surrogate id: an errorDeclaration has the same eventID as the event it
declares erroneous (the CBV 2.0 hash leaves the declaration out), so ``event_id`` is indexed,
not unique, and a declaration row (``declaration``) points at the event it declares with
``declares_pk`` — once that event is here: a declaration may arrive first.

The event's EPCIS JSON is not copied here: it lives in the ledger entry (``ledger_seq``), the
exact bytes that were hashed into the tree. The columns below are what queries filter on.

Lineage is a graph of integer ids with indexes both ways, so a trace is a few indexed lookups
and a recursive query over ``trace_lot_edge``: lot → lot edges (transformations, splits,
merges), parcel → lot rows (harvests), lot → unit (serialised items) and event links. Parcels
are referred to by DKBM and households by id (foundation table), never by parcel row id.
Rows made by an event that was later declared erroneous are kept with ``voided`` set.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Product(Base):
    """A trade item of a cooperative under its GTIN (stored as GTIN-14)."""

    __tablename__ = "trace_product"

    id: Mapped[int] = mapped_column(primary_key=True)
    gtin: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(40))
    # UN/ECE Rec 20 code its lots are counted in: KGM for grain, LTR for oil, H87 for bottles.
    unit: Mapped[str] = mapped_column(String(3))
    # Content of one serialised unit (a 5 LTR bottle), for mass balances of bottling.
    net_quantity: Mapped[float | None] = mapped_column(Double, default=None)
    net_unit: Mapped[str | None] = mapped_column(String(3), default=None)
    cooperative_id: Mapped[int] = mapped_column(ForeignKey("cooperative.id"), index=True)
    # Plausibility ranges (None: no check): harvest yield per 亩 and output per unit of input.
    yield_min_per_mu: Mapped[float | None] = mapped_column(Double, default=None)
    yield_max_per_mu: Mapped[float | None] = mapped_column(Double, default=None)
    ratio_min: Mapped[float | None] = mapped_column(Double, default=None)
    ratio_max: Mapped[float | None] = mapped_column(Double, default=None)
    ledger_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_entry.seq"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Lot(Base):
    """A batch of one product (GTIN + lot number, AI 10), with what was made and used of it."""

    __tablename__ = "trace_lot"
    __table_args__ = (UniqueConstraint("gtin", "lot"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("trace_product.id"), index=True)
    gtin: Mapped[str] = mapped_column(String(14))
    lot: Mapped[str] = mapped_column(String(20))
    # How it came to be: harvest, transformation, commissioning (serials) or other ADD.
    origin: Mapped[str] = mapped_column(String(16))
    # Totals of the lot's non-voided flows, in the product's unit; kept in step by the capture.
    produced: Mapped[float] = mapped_column(Double, default=0.0)
    consumed: Mapped[float] = mapped_column(Double, default=0.0)
    produced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cooperative_id: Mapped[int] = mapped_column(ForeignKey("cooperative.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Unit(Base):
    """A serialised item (GTIN + serial, AI 21), such as one 5 L bottle, and its lot."""

    __tablename__ = "trace_unit"
    __table_args__ = (UniqueConstraint("gtin", "serial"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gtin: Mapped[str] = mapped_column(String(14))
    serial: Mapped[str] = mapped_column(String(20))
    lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_lot.id"), index=True)
    # active, consumed (input of a transformation), decommissioned (DELETE) or voided (the
    # event that made it was declared erroneous)
    status: Mapped[str] = mapped_column(String(16), default="active")
    # The event that made it, and the one that last changed its status.
    event_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_event.id"), index=True)
    status_event_pk: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("trace_event.id"), index=True, default=None
    )
    # The 查询码 printed under its QR code (gs1/short_code.py), for /q/<code> to find it.
    short_code: Mapped[str | None] = mapped_column(String(9), index=True, default=None)


class Capture(Base):
    """One EPCIS capture job: all of its events were stored, or none."""

    __tablename__ = "trace_capture"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    success: Mapped[bool] = mapped_column(Boolean)
    event_count: Mapped[int] = mapped_column(Integer)
    # JSON list of {"pointer", "message"} when the capture failed.
    errors: Mapped[str | None] = mapped_column(Text, default=None)
    token_public_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """An accepted EPCIS event; its JSON is the ledger entry ``ledger_seq``."""

    __tablename__ = "trace_event"
    __table_args__ = (
        Index("ix_trace_event_biz_step_time", "biz_step", "event_time"),
        Index("ix_trace_event_cooperative_time", "cooperative_id", "event_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(300), index=True)
    # One of the five EPCIS event types, or the URI of an extension event type.
    event_type: Mapped[str] = mapped_column(String(300))
    action: Mapped[str | None] = mapped_column(String(8), default=None)
    biz_step: Mapped[str | None] = mapped_column(String(300), default=None)
    disposition: Mapped[str | None] = mapped_column(String(300), default=None)
    read_point: Mapped[str | None] = mapped_column(String(300), index=True, default=None)
    biz_location: Mapped[str | None] = mapped_column(String(300), index=True, default=None)
    event_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    record_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # One entry per event: the capture reads new ids back by it.
    ledger_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_entry.seq"), unique=True)
    capture_id: Mapped[str | None] = mapped_column(
        ForeignKey("trace_capture.id"), index=True, default=None
    )
    # Who may read it in queries: the cooperative and household it belongs to.
    cooperative_id: Mapped[int | None] = mapped_column(ForeignKey("cooperative.id"), default=None)
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("household.id"), index=True, default=None
    )
    # An errorDeclaration, and the event it declares erroneous: None while that event has not
    # arrived (a partner may correct an event it never sent us; it applies when it comes).
    declaration: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    declares_pk: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("trace_event.id"), index=True, default=None
    )
    # For a declared event: when it was declared erroneous, and by which declaration.
    erroneous_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    declared_by_pk: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("trace_event.id"), default=None
    )


class EventEpc(Base):
    """An identifier an event names, canonicalised, for MATCH_epc / MATCH_anyEPC queries."""

    __tablename__ = "trace_event_epc"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("trace_event.id"), primary_key=True
    )
    epc: Mapped[str] = mapped_column(String(300), primary_key=True, index=True)
    # epcList, childEPCs, parentID, inputEPCList, outputEPCList or a *QuantityList.
    field: Mapped[str] = mapped_column(String(24), primary_key=True)


class EventLot(Base):
    """An event that names one of the project's lots, and in which role."""

    __tablename__ = "trace_event_lot"

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("trace_event.id"), primary_key=True
    )
    lot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("trace_lot.id"), primary_key=True, index=True
    )
    # produced, consumed or observed
    role: Mapped[str] = mapped_column(String(12), primary_key=True)


class EventParcel(Base):
    """An event recorded on a parcel (field work, harvest, sensor reports)."""

    __tablename__ = "trace_event_parcel"
    __table_args__ = (Index("ix_trace_event_parcel_dkbm_time", "dkbm", "event_time"),)

    event_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("trace_event.id"), primary_key=True
    )
    dkbm: Mapped[str] = mapped_column(String(19), primary_key=True)
    event_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class LotFlow(Base):
    """A quantity an event added to (produce) or took from (consume) a lot."""

    __tablename__ = "trace_lot_flow"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_lot.id"), index=True)
    event_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_event.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # produce or consume
    quantity: Mapped[float] = mapped_column(Double)  # in the product's unit
    voided: Mapped[bool] = mapped_column(Boolean, default=False)


class LotEdge(Base):
    """Material of one lot went into another (a transformation, split or merge)."""

    __tablename__ = "trace_lot_edge"
    __table_args__ = (
        Index("ix_trace_lot_edge_input", "input_lot_id", "output_lot_id"),
        Index("ix_trace_lot_edge_output", "output_lot_id", "input_lot_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    input_lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_lot.id"))
    output_lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_lot.id"))
    event_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_event.id"), index=True)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)


class LotParcel(Base):
    """A harvest lot came (partly) from a parcel, held then by a household or cooperative."""

    __tablename__ = "trace_lot_parcel"
    __table_args__ = (Index("ix_trace_lot_parcel_dkbm_time", "dkbm", "harvested_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_lot.id"), index=True)
    dkbm: Mapped[str] = mapped_column(String(19))
    harvested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), default=None)
    operator_cooperative_id: Mapped[int | None] = mapped_column(
        ForeignKey("cooperative.id"), default=None
    )
    area_mu: Mapped[float | None] = mapped_column(Double, default=None)
    event_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_event.id"), index=True)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)


class Containment(Base):
    """A serialised unit packed into a container (an SSCC case) by an AggregationEvent."""

    __tablename__ = "trace_containment"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    parent_epc: Mapped[str] = mapped_column(String(300), index=True)
    unit_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_unit.id"), index=True)
    event_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_event.id"), index=True)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)


class Certificate(Base):
    """A 承诺达标合格证 issued for a lot: what the producer promises, with its own QR."""

    __tablename__ = "trace_certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    lot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trace_lot.id"), index=True)
    product_name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[float] = mapped_column(Double)
    unit: Mapped[str] = mapped_column(String(3))
    origin: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[dt.date] = mapped_column(Date)
    issuer: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(40))
    # The issue entry is public: it records SHA-256(salt, contact), never the phone number; the
    # salt (hex) stays here, so the audit binds the row's contact to its entry. None: issued
    # before that, when the entry recorded the contact itself.
    contact_salt: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # JSON lists of codes (see trace.certificates): the basis and the commitments made.
    basis: Mapped[str] = mapped_column(Text)
    commitments: Mapped[str] = mapped_column(Text)
    cooperative_id: Mapped[int] = mapped_column(ForeignKey("cooperative.id"), index=True)
    ledger_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("ledger_entry.seq"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
