"""Webhook subscriptions to named queries: the subscription resource, what a delivery holds
(the matching events the creator may see, as an EPCISQueryDocument signed with the client's
signatureToken), retries with back-off under one delivery id, schedules, and the journal."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import Database
from digital_village.trace.subscriptions import schedule, service
from digital_village.trace.subscriptions.delivery import DeliveryWorker
from tests.conftest import GS1_EPCIS_SCHEMA, World
from tests.subscriptions.conftest import TOKEN, Subscriber
from tests.trace import partner_documents
from tests.trace.test_epcis import FORMATS

QUERIES = "/api/v1/epcis/queries"
WINDOW = {"GE_eventTime": "2025-06-02T00:00:00Z", "LT_eventTime": "2025-06-03T00:00:00Z"}


def capture(
    client: TestClient, world: World, document: dict[str, Any], role: str = "manager"
) -> list[str]:
    response = client.post("/api/v1/epcis/capture", json=document, headers=world.auth(role))
    assert response.status_code == 202, response.text
    return [event["eventID"] for event in response.json()["events"]]


def named_query(client: TestClient, world: World, name: str, query: dict[str, Any],
                role: str = "manager") -> None:  # fmt: skip
    response = client.post(QUERIES, json={"name": name, "query": query}, headers=world.auth(role))
    assert response.status_code == 201, response.text


def subscribe(client: TestClient, world: World, name: str, role: str = "manager",
              **body: Any) -> Any:  # fmt: skip
    return client.post(f"{QUERIES}/{name}/subscriptions", json=body, headers=world.auth(role))


@pytest.fixture
def worker(db: Database) -> DeliveryWorker:
    """The delivery worker on the test's database, run one round at a time by the test."""
    return DeliveryWorker(db, timeout=5.0)


def test_the_subscription_resource(
    client: TestClient, world: World, subscriber: Subscriber
) -> None:
    named_query(client, world, "shipments", {"EQ_bizStep": "shipping"})
    auth = world.auth("manager")
    made = subscribe(client, world, "shipments", dest=subscriber.url, signatureToken=TOKEN,
                     stream=True)  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["dest"] == subscriber.url and body["stream"] is True
    assert "signatureToken" not in body
    location = made.headers["Location"]
    assert location == f"{QUERIES}/shipments/subscriptions/{body['subscriptionID']}"
    assert client.get(location, headers=auth).json()["subscriptionID"] == body["subscriptionID"]
    listed = client.get(f"{QUERIES}/shipments/subscriptions", headers=auth).json()
    assert [s["subscriptionID"] for s in listed] == [body["subscriptionID"]]
    for wrong in (
        {"dest": subscriber.url},  # neither stream nor schedule
        {"dest": subscriber.url, "stream": True, "schedule": {"minute": "0"}},
        {"dest": "ftp://example.org/x", "stream": True},
        {"dest": subscriber.url, "schedule": {"minute": "61"}},
        {"dest": subscriber.url, "schedule": {"fortnight": "1"}},
    ):
        assert subscribe(client, world, "shipments", **wrong).status_code == 422, wrong
    assert subscribe(client, world, "nothing", dest=subscriber.url, stream=True).status_code == 404
    # Another household's token neither sees nor ends it.
    assert client.get(location, headers=world.auth("farmer")).status_code == 404
    assert client.delete(location, headers=world.auth("farmer")).status_code == 404
    assert client.delete(location, headers=auth).status_code == 204
    assert client.get(location, headers=auth).status_code == 404


def test_a_streamed_subscription_delivers_matching_events_signed(
    client: TestClient,
    world: World,
    subscriber: Subscriber,
    worker: DeliveryWorker,
    db: Database,
) -> None:
    named_query(client, world, "shipments", {"EQ_bizStep": ["shipping"], **WINDOW})
    subscribe(client, world, "shipments", dest=subscriber.url, signatureToken=TOKEN, stream=True)
    assert worker.run_once() == 0  # nothing captured yet
    ids = capture(client, world, partner_documents.document())
    assert worker.run_once() == 1
    [received] = subscriber.received
    assert received.signed_with(TOKEN) and not received.signed_with("another token")
    document = received.document
    assert document["id"] == f"urn:uuid:{received.delivery_id}"
    results = document["epcisBody"]["queryResults"]
    assert results["queryName"] == "shipments" and results["subscriptionID"]
    assert received.event_ids == [ids[2]]  # the shipping TransactionEvent
    assert received.headers["content-type"] == "application/ld+json"
    if GS1_EPCIS_SCHEMA.is_file():  # the schema's own tests say when it is missing
        schema = Draft7Validator(json.loads(Path(GS1_EPCIS_SCHEMA).read_text("utf-8")),
                                 format_checker=FORMATS)  # fmt: skip
        assert not list(schema.iter_errors(document))
    # Nothing new, nothing sent; the correction of the shipment comes as its own delivery.
    assert worker.run_once() == 0
    capture(client, world, partner_documents.declaration_of_unknown_event())
    assert worker.run_once() == 1
    second = subscriber.received[-1]
    assert second.delivery_id != received.delivery_id
    assert "errorDeclaration" in second.document["epcisBody"]["queryResults"]["resultsBody"][
        "eventList"][0]  # fmt: skip
    with db.session() as session:
        journal = service.deliveries_of(session=session, subscription_id=results["subscriptionID"])
    assert [(d.event_count, d.attempts, d.delivered_at is not None) for d in journal] == [
        (1, 1, True),
        (1, 1, True),
    ]


def test_a_subscription_delivers_only_what_its_creator_may_see(
    client: TestClient, world: World, subscriber: Subscriber, worker: DeliveryWorker
) -> None:
    named_query(client, world, "everything", {}, role="farmer")
    subscribe(client, world, "everything", role="farmer", dest=subscriber.url, stream=True)
    capture(client, world, partner_documents.document())  # the cooperative's, not the household's
    assert worker.run_once() == 0
    assert subscriber.received == []


def test_a_revoked_creator_gets_nothing_more(
    client: TestClient, world: World, subscriber: Subscriber, worker: DeliveryWorker, db: Database
) -> None:
    named_query(client, world, "all", WINDOW)
    subscribe(client, world, "all", dest=subscriber.url, stream=True)
    public_id = world.tokens["manager"].split("_")[1]
    with db.transaction() as session:
        auth.revoke_token(session=session, public_id=public_id, actor=Actor.operator())
        colleague = auth.issue_token(
            session=session,
            role=Role.MANAGER,
            actor=Actor.operator(),
            scope=auth.TokenScope(cooperative_id=world.coop_a),
        ).token
    # The cooperative's events, which the revoked token could read.
    response = client.post("/api/v1/epcis/capture", json=partner_documents.document(),
                           headers={"Authorization": f"Bearer {colleague}"})  # fmt: skip
    assert response.status_code == 202, response.text
    assert worker.run_once() == 0
    assert subscriber.received == []


def test_a_failed_delivery_is_retried_with_backoff_under_the_same_id(
    client: TestClient, world: World, subscriber: Subscriber, worker: DeliveryWorker
) -> None:
    named_query(client, world, "all", WINDOW)
    subscribe(client, world, "all", dest=subscriber.url, signatureToken=TOKEN, stream=True)
    ids = capture(client, world, partner_documents.document())
    subscriber.fail_next = 2
    assert worker.run_once() == 0  # 503
    assert worker.run_once() == 0  # not due yet: back-off of 1 s
    assert len(subscriber.received) == 1
    time.sleep(service.retry_delay(1) + 0.1)
    assert worker.run_once() == 0  # 503 again; now 2 s
    time.sleep(service.retry_delay(2) + 0.1)
    assert worker.run_once() == 1
    attempts = subscriber.by_delivery()
    assert len(attempts) == 1
    [(delivery_id, tries)] = attempts.items()
    assert all(t.document["id"] == f"urn:uuid:{delivery_id}" for t in tries)
    assert len(tries) == 3 and len({t.body for t in tries}) == 1
    assert sorted(tries[-1].event_ids) == sorted(ids)
    assert worker.run_once() == 0


def test_a_scheduled_subscription_reports_even_when_empty_if_asked(
    client: TestClient, world: World, subscriber: Subscriber, worker: DeliveryWorker
) -> None:
    named_query(client, world, "nightly", {"EQ_bizStep": "shipping"})
    made = subscribe(client, world, "nightly", dest=subscriber.url, reportIfEmpty=True,
                     schedule={"second": "*"})  # fmt: skip
    assert made.status_code == 201, made.text
    time.sleep(1.1)
    assert worker.run_once() == 1
    assert subscriber.received[0].event_ids == []
    assert subscriber.received[0].headers.get("gs1-signature") is None  # no token given


def test_deleting_a_query_ends_its_subscriptions(
    client: TestClient, world: World, subscriber: Subscriber, worker: DeliveryWorker
) -> None:
    named_query(client, world, "all", WINDOW)
    subscribe(client, world, "all", dest=subscriber.url, stream=True)
    assert client.delete(f"{QUERIES}/all", headers=world.auth("manager")).status_code == 204
    capture(client, world, partner_documents.document())
    assert worker.run_once() == 0 and subscriber.received == []


@pytest.mark.parametrize(
    ("fields", "after", "expected"),
    [
        ({"hour": "1", "minute": "5"}, "2026-12-07T00:00:00", "2026-12-07T01:05:00"),
        ({"hour": "1", "minute": "5"}, "2026-12-07T01:05:00", "2026-12-08T01:05:00"),
        ({"second": "0/30"}, "2026-12-07T10:00:10", "2026-12-07T10:00:30"),
        ({"minute": "*/15"}, "2026-12-07T10:16:00", "2026-12-07T10:30:00"),
        ({"dayOfWeek": "1", "hour": "6"}, "2026-12-08T07:00:00", "2026-12-14T06:00:00"),
        ({"dayOfMonth": "29", "month": "2"}, "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ({"minute": "[10-12],40"}, "2026-12-07T10:12:00", "2026-12-07T10:40:00"),
    ],
)
def test_query_schedules(fields: dict[str, str], after: str, expected: str) -> None:
    moment = dt.datetime.fromisoformat(after).replace(tzinfo=dt.UTC)
    found = schedule.parse(fields).next_after(moment)
    assert found == dt.datetime.fromisoformat(expected).replace(tzinfo=dt.UTC)
