"""Wire shapes of named queries and subscriptions (the EPCIS 2.0 REST binding's names)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from digital_village.trace.subscriptions.models import NamedQuery, Subscription


class NamedQueryIn(BaseModel):
    """``POST /api/v1/epcis/queries``: a name and the query's parameters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    context: Any = Field(default=None, alias="@context")
    name: str = Field(max_length=200, examples=["harvests-2025"])
    query: dict[str, Any] = Field(
        examples=[{"EQ_bizStep": ["shipping"], "GE_eventTime": "2025-05-01T00:00:00+08:00"}]
    )


class NamedQueryOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    query: dict[str, Any]
    created_at: dt.datetime = Field(alias="createdAt")

    @classmethod
    def of(cls, row: NamedQuery) -> NamedQueryOut:
        return cls(name=row.name, query=json.loads(row.query), created_at=row.created_at)


class SubscriptionIn(BaseModel):
    """``POST …/queries/{name}/subscriptions``: a webhook, streamed or on a schedule."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dest: str = Field(max_length=2000, examples=["https://partner.example/epcis/callback"])
    signature_token: str | None = Field(default=None, max_length=500, alias="signatureToken")
    report_if_empty: bool = Field(default=False, alias="reportIfEmpty")
    stream: bool = False
    schedule: dict[str, str | int] | None = Field(default=None, examples=[{"minute": "0/15"}])
    initial_record_time: dt.datetime | None = Field(default=None, alias="initialRecordTime")


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    subscription_id: str = Field(alias="subscriptionID")
    query_name: str = Field(alias="queryName")
    dest: str
    report_if_empty: bool = Field(alias="reportIfEmpty")
    stream: bool
    schedule: dict[str, Any] | None = None
    initial_record_time: dt.datetime | None = Field(default=None, alias="initialRecordTime")
    created_at: dt.datetime = Field(alias="createdAt")
    last_notified_at: dt.datetime | None = Field(default=None, alias="lastNotifiedAt")

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionOut:
        return cls(
            subscription_id=row.id,
            query_name=row.query_name,
            dest=row.dest,
            report_if_empty=row.report_if_empty,
            stream=row.stream,
            schedule=json.loads(row.schedule) if row.schedule else None,
            initial_record_time=row.initial_record_time,
            created_at=row.created_at,
            last_notified_at=row.last_notified_at,
        )
