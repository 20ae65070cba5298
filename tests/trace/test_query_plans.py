"""The capture's and the trace's queries use indexes: none walks a whole table.

SQLite plans without statistics, so the plan a test database gets is the one a county-sized
database gets; a scan here is a capture or a trace that slows down as the log grows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Connection

from tests.conftest import World
from tests.trace.conftest import BOTTLE, RAPESEED, Chain, capture_doc, season

# Tables small enough to walk: a handful of rows per cooperative, or per capture.
SMALL = {"trace_product", "cooperative", "region", "ledger_checkpoint", "ledger_key"}


@contextmanager
def statements(connection: Connection) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith(("SELECT", "WITH")) and not many:
            seen.append((sql, params))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", record)


def full_scans(connection: Connection, seen: list[tuple[str, Any]]) -> list[str]:
    """Statements whose plan walks a whole table (the newest row by an index is fine)."""
    tables = set(
        connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars()
    )
    found = []
    for sql, params in seen:
        for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all():
            detail = str(row[-1])
            words = detail.split()
            if words[0] != "SCAN" or words[1] not in tables or words[1] in SMALL:
                continue
            if "USING" in detail and "LIMIT" in sql:
                continue
            found.append(f"{detail}  ←  {' '.join(sql.split())[:200]}")
    return found


def null_searches(connection: Connection, seen: list[tuple[str, Any]]) -> list[str]:
    """Statements that look rows up by an index on a column they ask to be NULL: such an
    index holds nearly every row under NULL, so the "search" reads the whole table."""
    found = []
    for sql, params in seen:
        for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all():
            detail = str(row[-1])
            match = re.search(r"USING (?:COVERING )?INDEX \S+ \((\w+)=\?", detail)
            if match and re.search(rf"\.{match.group(1)} IS NULL", sql):
                found.append(f"{detail}  ←  {' '.join(sql.split())[:200]}")
    return found


def test_capture_and_trace_never_walk_a_whole_table(
    backend: str,
    client: TestClient,
    world: World,
    chain: Chain,
    connection: Connection,
) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL plans by its statistics; this checks SQLite's fixed plans")
    events = season(chain)
    with statements(connection) as seen:
        assert capture_doc(client, world, "manager", events).status_code == 202
        declared = {**events[6], "errorDeclaration": {"declarationTime": "2025-06-20T10:00:00Z"}}
        assert capture_doc(client, world, "manager", [declared]).status_code == 202
        assert capture_doc(client, world, "manager", [events[6]]).status_code == 409
        for path, params in (
            (f"/api/v1/trace/{BOTTLE}/B-2025-007", {}),
            (f"/api/v1/trace/{RAPESEED}/RS-2025-001", {"direction": "forward"}),
            (f"/api/v1/trace/parcels/{chain.own[0]}", {}),
        ):
            assert client.get(path, params=params).status_code == 200
    assert seen
    scans = full_scans(connection, seen) + null_searches(connection, seen)
    assert scans == [], "\n".join(scans)
