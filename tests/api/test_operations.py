"""Operations: Prometheus metrics and rate limits."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from digital_village.api.ratelimit import TokenBuckets
from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database, make_engine, track_cost
from tests.api.test_app import assert_problem
from tests.conftest import World


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/api/v1/regions/510603101")
    client.get("/api/v1/regions/510603999")
    text = client.get("/metrics").text
    assert (
        'dv_http_requests_total{method="GET",route="/api/v1/regions/{code}",status="404"}' in text
    )
    assert "dv_ledger_size 0.0" in text
    assert "510603999" not in text  # raw paths never become labels


@pytest.fixture
def strict_client(settings: Settings, db: Database) -> Iterator[TestClient]:
    limited = settings.model_copy(
        update={
            "rate_limit_public_per_minute": 5,
            "rate_limit_token_per_minute": 8,
            "rate_limit_failed_auth_per_minute": 3,
        }
    )
    with TestClient(create_app(limited, database=db), raise_server_exceptions=False) as test_client:
        yield test_client


def test_public_clients_are_limited_with_429_and_retry_after(strict_client: TestClient) -> None:
    statuses = [strict_client.get("/api/v1/regions").status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429, 429]
    refused = strict_client.get("/api/v1/regions")
    assert_problem(refused, 429, "public")
    assert int(refused.headers["retry-after"]) >= 1
    assert strict_client.get("/healthz").status_code == 200  # health is never limited


def test_tokens_have_their_own_budget(strict_client: TestClient, world: World) -> None:
    for _ in range(5):
        strict_client.get("/api/v1/regions")
    assert strict_client.get("/api/v1/regions").status_code == 429
    me = [
        strict_client.get("/api/v1/me", headers=world.auth("admin")).status_code for _ in range(9)
    ]
    assert me[:8] == [200] * 8 and me[8] == 429
    assert strict_client.get("/api/v1/me", headers=world.auth("manager")).status_code == 200


def test_token_guessing_is_cut_off(strict_client: TestClient, world: World) -> None:
    guesses = [
        strict_client.get("/api/v1/me", headers={"Authorization": f"Bearer dv_aaaaaaaaaaaa_{n}"})
        for n in range(5)
    ]
    assert [g.status_code for g in guesses[:3]] == [401, 401, 401]
    assert guesses[4].status_code == 429
    # Even a valid token from that client now waits: the guesser is refused outright.
    assert strict_client.get("/api/v1/me", headers=world.auth("admin")).status_code == 429


def test_buckets_refill_over_time() -> None:
    buckets = TokenBuckets(per_minute=60)
    for _ in range(60):
        assert buckets.take("a", now=100.0) == 0
    assert buckets.take("a", now=100.0) == pytest.approx(1.0)
    assert buckets.take("a", now=101.5) == 0
    assert buckets.take("b", now=100.0) == 0


def test_metrics_count_each_routes_statements(client: TestClient) -> None:
    client.get("/api/v1/regions/510603101")  # a plain route, run in the thread pool
    text = client.get("/metrics").text
    found = re.search(r'dv_db_statements_total\{route="/api/v1/regions/\{code\}"\} (\d+)', text)
    assert found and int(found.group(1)) >= 1


def test_write_transactions_report_their_wait_for_the_lock_and_their_hold(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cost.db'}")
    database = Database(engine)
    with database.transaction() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    held = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        with database.transaction() as other:
            other.execute(text("INSERT INTO t VALUES (0)"))
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)
    threading.Timer(0.2, release.set).start()
    cost = track_cost()
    with database.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))  # the transaction begins here
        time.sleep(0.05)
        session.execute(text("INSERT INTO t VALUES (2)"))
    holder.join()
    engine.dispose()
    assert cost.write_wait >= 0.15  # queued behind the other writer
    assert 0.05 <= cost.write_hold < 1.0
    assert cost.statements == 3  # BEGIN IMMEDIATE and the inserts
