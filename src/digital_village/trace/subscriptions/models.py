"""Tables of named queries, their subscriptions and the journal of webhook deliveries.

A subscription's ``cursor_pk`` is the id of the last event it has been considered for: events
are journaled by the capture itself (``trace_event`` rows, committed with the events under the
ledger's single-writer lock, so ids grow in commit order), and the worker turns events after the
cursor into ``epcis_delivery`` rows and moves the cursor in one transaction. A delivery row is
the promise to send: it keeps the event ids it carries, so a retry (after a failure or a
restart) sends the same document under the same delivery id.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow


class NamedQuery(Base):
    """A query kept under a name (``POST /api/v1/epcis/queries``) and whose it is."""

    __tablename__ = "epcis_named_query"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The query as the client sent it: JSON object of parameter name → value or list.
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    token_public_id: Mapped[str | None] = mapped_column(String(16), default=None)
    role: Mapped[str] = mapped_column(String(16))
    cooperative_id: Mapped[int | None] = mapped_column(ForeignKey("cooperative.id"), default=None)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), default=None)


class Subscription(Base):
    """A webhook subscription to a named query: where to, how to sign, when to send."""

    __tablename__ = "epcis_subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    query_name: Mapped[str] = mapped_column(
        ForeignKey("epcis_named_query.name", ondelete="CASCADE"), index=True
    )
    dest: Mapped[str] = mapped_column(Text)
    # The client's secret for the GS1-Signature HMAC; never answered back.
    signature_token: Mapped[str | None] = mapped_column(Text, default=None)
    report_if_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    # The cron-like schedule (JSON: second, minute, hour, dayOfMonth, month, dayOfWeek).
    schedule: Mapped[str | None] = mapped_column(Text, default=None)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    initial_record_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # Events with a greater id have not yet been considered for this subscription.
    cursor_pk: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    # The creator's read scope: a subscription delivers only what its creator may see.
    token_public_id: Mapped[str | None] = mapped_column(String(16), default=None)
    role: Mapped[str] = mapped_column(String(16))
    cooperative_id: Mapped[int | None] = mapped_column(ForeignKey("cooperative.id"), default=None)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("household.id"), default=None)


class Delivery(Base):
    """One webhook delivery (an EPCISQueryDocument), sent until the subscriber answers 2xx."""

    __tablename__ = "epcis_delivery"
    __table_args__ = (Index("ix_epcis_delivery_due", "delivered_at", "next_attempt_at"),)

    # The delivery id: the document's id (urn:uuid:…) and its Idempotency-Key header.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("epcis_subscription.id", ondelete="CASCADE"), index=True
    )
    # JSON list of the trace_event ids it carries, in record order.
    event_pks: Mapped[str] = mapped_column(Text)
    event_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
