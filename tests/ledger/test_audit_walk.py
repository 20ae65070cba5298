"""The audit's fast paths decide as the plain ones do: canonical JSON, and the parallel walk."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from sqlalchemy import create_engine, text

from digital_village.db import Database
from digital_village.ledger import audit, canonical, keys
from digital_village.ledger.log import EntryIn, Ledger
from tests.ledger.test_canonical import values

ORIGIN = "test.digital-village.example/ledger"


def _plain(body: bytes) -> tuple[Any, bool] | None:
    try:
        value = json.loads(body)
        return value, canonical.dumps(value) == body
    except (ValueError, canonical.CanonicalizationError):
        return None


@settings(max_examples=600, deadline=None)
@given(values)
def test_canonical_bytes_and_orjsons_are_told_as_canonical_dumps_tells_them(value: Any) -> None:
    candidates = []
    with contextlib.suppress(canonical.CanonicalizationError):
        candidates.append(canonical.dumps(value))
    with contextlib.suppress(orjson.JSONEncodeError, TypeError):
        # orjson's own bytes: floats as "2.0" or "1e+16", keys sorted by code point.
        candidates.append(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    for body in candidates:
        fast, plain = canonical.parse_canonical(body), _plain(body)
        assert (fast is None) == (plain is None)
        if fast is not None and plain is not None:
            assert fast[1] == plain[1], body


@pytest.mark.parametrize(
    ("body", "is_canonical"),
    [
        (b'{"a":1.0}', False),
        (b'{"a":0.0000025}', True),
        (b'{"a":2.5e-6}', False),
        (b'{"a":1e+21}', True),
        (b'{"b":1,"a":2}', False),
        ('{"\U0001f600":2,"\ue000":1}'.encode(), True),
        ('{"\ue000":1,"\U0001f600":2}'.encode(), False),
        (b'{"time":"2026-05-12T00:30:00.000000Z","v":1}', True),
    ],
)
def test_the_cases_where_orjson_and_rfc_8785_differ(body: bytes, is_canonical: bool) -> None:
    parsed = canonical.parse_canonical(body)
    assert parsed is not None and parsed[1] is is_canonical


def _written_log(
    url: str, tmp_path: Path, *, entries: int, per_append: int, chains: int | None = None
) -> Database:
    """A committed log of ``entries`` test entries, appended ``per_append`` at a time (each
    append signs a checkpoint); with ``chains``, entry n extends chain ``lot:<n % chains>``."""
    key_path = tmp_path / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    ledger = Ledger.from_key_file(key_path, ORIGIN)
    database = Database.from_url(url)
    for start in range(0, entries, per_append):
        with database.transaction() as session:
            ledger.append_many(
                session,
                [
                    EntryIn("test.event", {"n": n}, None if chains is None else f"lot:{n % chains}")
                    for n in range(start, start + per_append)
                ],
            )
    return database


def test_the_parallel_walk_finds_what_the_sequential_one_does(
    committed_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = _written_log(committed_database_url, tmp_path, entries=300, per_append=30, chains=7)
    engine = create_engine(committed_database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_entry SET body = :b WHERE seq = 40"), {"b": b'{"edited":1}'}
        )
        connection.execute(text("DELETE FROM ledger_hash WHERE idx = 301"))
        connection.execute(
            text("UPDATE ledger_entry SET leaf_hash = :h WHERE seq = 250"), {"h": b"\x00" * 32}
        )
    engine.dispose()

    seen: list[list[tuple[int, str, bytes]]] = []

    class Seen(audit.RecordChecker):
        """A record checker: what it is handed while the log streams past."""

        kinds = ("test.event",)

        def __init__(self) -> None:
            self.entries: list[tuple[int, str, bytes]] = []
            seen.append(self.entries)

        def entry(self, seq: int, kind: str, body: bytes) -> None:
            self.entries.append((seq, kind, body))

        def finish(self, session: Any, found: audit.Found) -> dict[str, int]:
            return {"seen": len(self.entries)}

    def found() -> list[tuple[int, str]]:
        with database.session() as session:
            report = audit.audit(session, origin=ORIGIN, checkers=[Seen()])
        assert report.entries == 300 and report.records == {"seen": 300}
        return [(p.index, p.what) for p in report.problems]

    sequential = found()
    assert {index for index, _ in sequential} >= {40, 250}
    assert (152, "stored tree hash 301 is missing") in sequential
    monkeypatch.setattr(audit, "PARALLEL_FROM", 1)
    monkeypatch.setattr(audit, "TASK_ENTRIES", 70)
    assert sorted(found()) == sorted(sequential)
    # Record checkers see every entry of their kinds, with its bytes as stored, in order.
    assert seen[1] == seen[0] and seen[0][40][2] == b'{"edited":1}'
    database.dispose()


def test_an_integer_past_two_to_the_64_is_read_whole_as_the_reference_reads_it() -> None:
    # orjson would read it as a float, whose RFC 8785 form is these same digits.
    body = b'{"n":18446744073709552000}'
    assert canonical.parse_canonical(body) is None and _plain(body) is None


@pytest.mark.parametrize(
    "tampering",
    [
        [
            "UPDATE ledger_entry SET chain_prev_seq = NULL WHERE chain_prev_seq = 100",
            "DELETE FROM ledger_entry WHERE seq = 100",
        ],
        ["DELETE FROM ledger_entry WHERE seq >= 280", "DELETE FROM ledger_hash WHERE idx >= 600"],
        ["UPDATE ledger_hash SET hash = :zeros WHERE idx = 254"],  # above the block of 64 at 64
        ["UPDATE ledger_hash SET hash = :zeros WHERE idx = 30"],
        ["DELETE FROM ledger_hash WHERE idx = 590"],
        ["UPDATE ledger_checkpoint SET root_hash = :zeros WHERE size = 60"],
        ["UPDATE ledger_entry SET chain_prev_seq = 3 WHERE seq = 200"],
        ["UPDATE ledger_entry SET prev_hash = :zeros WHERE seq = 128"],
        ["UPDATE ledger_entry SET leaf_hash = :short WHERE seq = 63"],
        ["UPDATE ledger_entry SET kind = CAST('x' AS BLOB) WHERE seq = 70"],
    ],
)
@pytest.mark.parametrize("task_entries", [16, 70])
def test_block_by_block_the_audit_finds_what_the_sequential_walk_does(
    backend: str,
    committed_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tampering: list[str],
    task_entries: int,
) -> None:
    if backend == "postgres" and any("BLOB" in statement for statement in tampering):
        pytest.skip("a text column holds only text on PostgreSQL")
    database = _written_log(committed_database_url, tmp_path, entries=300, per_append=30, chains=7)
    engine = create_engine(committed_database_url)
    with engine.begin() as connection:
        for statement in tampering:
            connection.execute(text(statement), {"zeros": b"\x00" * 32, "short": b"\x00" * 5})
    engine.dispose()

    def found() -> list[tuple[int, str]]:
        with database.session() as session:
            report = audit.audit(session, origin=ORIGIN)
        return [(p.index, p.what) for p in report.problems]

    sequential = found()
    assert sequential
    monkeypatch.setattr(audit, "PARALLEL_FROM", 1)
    monkeypatch.setattr(audit, "TASK_ENTRIES", task_entries)
    assert sorted(found()) == sorted(sequential)
    database.dispose()


def test_a_checkpoint_the_workers_were_not_told_of_is_checked_all_the_same(
    committed_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when a publisher signs a checkpoint while the audit runs: its block's root up to it
    # is recomputed afresh.
    database = _written_log(committed_database_url, tmp_path, entries=100, per_append=25)
    engine = create_engine(committed_database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_checkpoint SET root_hash = :h WHERE size = 50"), {"h": b"\x00" * 32}
        )
    engine.dispose()
    monkeypatch.setattr(audit, "PARALLEL_FROM", 1)
    monkeypatch.setattr(audit, "TASK_ENTRIES", 64)
    monkeypatch.setattr(
        audit, "_CHECKPOINT_SIZES_SQL", "SELECT size FROM ledger_checkpoint WHERE ? < 0 AND ? < 0"
    )
    with database.session() as session:
        report = audit.audit(session, origin=ORIGIN)
    assert report.checkpoints == 4
    assert [(p.index, p.what) for p in report.problems] == [
        (49, "the checkpoint at size 50 has a root the entries do not produce"),
        (49, "the signed checkpoint text at size 50 differs from its stored row"),
    ]
    database.dispose()
