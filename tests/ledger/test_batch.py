"""Batch proofs: many entries against one checkpoint in one answer, each path as RFC 9162 says."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger import batch, merkle, note
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


def append(db: Database, ledger: Ledger, count: int, start: int = 0) -> None:
    with db.transaction() as session:
        ledger.append_many(
            session,
            [EntryIn("test.event", {"n": n, "名": "菜油"}) for n in range(start, start + count)],
        )


def verifiers(ledger: Ledger) -> list[note.Verifier]:
    return [note.Verifier.parse(ledger.vkey)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", [3]), ("7,3,3", [3, 7]), ("0-4,2", [0, 1, 2, 3, 4]), (" 5 , 9-10", [5, 9, 10])],
)
def test_indexes_and_ranges_parse(text: str, expected: list[int]) -> None:
    assert batch.parse_indexes(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [("", "''"), ("a", "'a'"), ("07", "'07'"), ("5-2", "runs backwards"), ("0-5000", "at most")],
)
def test_bad_indexes_are_refused_naming_the_term(text: str, named: str) -> None:
    with pytest.raises(batch.Invalid) as raised:
        batch.parse_indexes(text)
    assert named in raised.value.detail


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=70),
    picks=st.lists(st.integers(min_value=0, max_value=69), min_size=1, max_size=20),
)
def test_every_path_is_the_single_proof_of_its_leaf(size: int, picks: list[int]) -> None:
    store = merkle.MemoryHashStore()
    for n in range(size):
        store.append(f"entry {n}".encode())
    indexes = sorted({pick % size for pick in picks})
    before = store.read_calls
    paths = batch.inclusion_paths(indexes, size, store.read_hashes)
    assert store.read_calls - before <= 1  # one read for the whole batch
    for index, path in zip(indexes, paths, strict=True):
        assert path == store.inclusion_proof(index, size)
        merkle.verify_inclusion(
            merkle.hash_leaf(f"entry {index}".encode()), index, size, path, store.root(size)
        )


def test_the_route_proves_many_entries_against_one_checkpoint(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    append(db, ledger, 21)
    response = client.get("/api/v1/ledger/proofs?indexes=0,3-6,20")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    document = response.json()
    assert document["format"] == "digital-village/batch-proof@v1"
    assert document["size"] == 21 and document["pending"] == [] and document["missing"] == []
    assert document["log_size"] == 21
    checked = batch.check_batch(document, verifiers(ledger))
    assert sorted(checked.entries) == [0, 3, 4, 5, 6, 20]
    assert '"名":"菜油"' in checked.entries[4].decode()
    # Shared upper path hashes are sent once.
    sent = sum(len(item["path"]) for item in document["entries"])
    assert len(document["hashes"]) < sent


def test_entries_beyond_the_checkpoint_are_pending_and_removed_ones_missing(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    append(db, ledger, 6)
    with db.transaction() as session:
        session.execute(delete(LedgerEntry).where(LedgerEntry.seq == 2))
    document = client.get("/api/v1/ledger/proofs?indexes=1,2,5,6,40").json()
    assert document["pending"] == [6, 40]
    assert document["missing"] == [2]
    assert [item["index"] for item in document["entries"]] == [1, 5]
    batch.check_batch(document, verifiers(ledger))


def test_a_named_size_is_proven_against_that_checkpoint_and_cached(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    append(db, ledger, 4)
    append(db, ledger, 4, start=4)
    response = client.get("/api/v1/ledger/proofs?indexes=1,6&size=4")
    assert "immutable" in response.headers["cache-control"]
    document = response.json()
    assert document["size"] == 4 and document["pending"] == [6]
    assert document["log_size"] == 8  # entries beyond the checkpoint asked for
    assert batch.check_batch(document, verifiers(ledger)).checkpoint.size == 4
    assert client.get("/api/v1/ledger/proofs?indexes=1&size=5").status_code == 404


def test_an_edited_entry_fails_its_own_check_naming_it(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    append(db, ledger, 9)
    with db.transaction() as session:
        session.execute(
            update(LedgerEntry).where(LedgerEntry.seq == 5).values(body=b'{"forged":\xff}')
        )
    document = client.get("/api/v1/ledger/proofs?indexes=4,5").json()
    edited = next(item for item in document["entries"] if item["index"] == 5)
    assert base64.b64decode(edited["entry_base64"]) == b'{"forged":\xff}'
    checked = batch.check_batch(document, verifiers(ledger))
    assert list(checked.entries) == [4]
    assert checked.failures[5].startswith("entry 5: inclusion proof for leaf 5 does not lead")


def test_bad_requests_are_problems(client: TestClient, db: Database, ledger: Ledger) -> None:
    assert client.get("/api/v1/ledger/proofs?indexes=1").status_code == 404  # empty log
    append(db, ledger, 2)
    bad = client.get("/api/v1/ledger/proofs?indexes=1,x")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "'x'" in bad.json()["detail"]
    assert client.get("/api/v1/ledger/proofs").status_code == 422


def test_a_checkpoint_signed_by_another_key_fails(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    append(db, ledger, 3)
    with db.transaction() as session:
        session.execute(delete(LedgerCheckpoint).where(LedgerCheckpoint.size < 3))
    document = client.get("/api/v1/ledger/proofs?indexes=0-2").json()
    other = note.Signer.parse(note.generate_signer_key(ledger.origin)).verifier()
    with pytest.raises(batch.BatchError, match="malformed batch proof"):
        batch.check_batch(document, [other])


def test_a_large_answer_is_gzipped_when_the_client_accepts_it(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    append(db, ledger, 40)
    plain = client.get(
        "/api/v1/ledger/proofs?indexes=0-39", headers={"Accept-Encoding": "identity"}
    )
    zipped = client.get("/api/v1/ledger/proofs?indexes=0-39", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content)
    assert zipped.json() == plain.json()
