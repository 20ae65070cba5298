"""The log asks its witnesses to cosign: two real witnesses on 127.0.0.1, one going down and
coming back, a stale record of what a witness knows, and a history rewritten behind its back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete
from typer.testing import CliRunner

from digital_village.cli.main import app as dv_app
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger import cosigner, merkle, monitor, witnesses
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import (
    LedgerCheckpoint,
    LedgerEntry,
    LedgerHash,
    LedgerWitness,
)
from digital_village.ledger.verify import VerificationError, verify_proof
from tests.witness.conftest import WitnessServer


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


@pytest.fixture
def http() -> Iterator[cosigner.httpx.Client]:
    with cosigner.make_client(timeout=2.0) as client:
        yield client


@pytest.fixture
def configured(
    db: Database, ledger: Ledger, witness_servers: list[WitnessServer]
) -> list[WitnessServer]:
    """Both witnesses running, each witnessing this log, both configured on the log."""
    for server in witness_servers:
        server.start()
        assert server.store is not None
        server.store.add_log(ledger.origin, ledger.vkey)
    with db.transaction() as session:
        witnesses.add(
            session=session,
            name="德阳市农业农村局",
            vkey=witness_servers[0].vkey,
            url=witness_servers[0].url,
        )
        witnesses.add(
            session=session,
            name="四川省追溯平台",
            vkey=witness_servers[1].vkey,
            url=witness_servers[1].url,
        )
    return witness_servers


def append(db: Database, ledger: Ledger, count: int, start: int = 0) -> None:
    with db.transaction() as session:
        ledger.append_many(
            session, [EntryIn("test.event", {"n": n}) for n in range(start, start + count)]
        )


def served(client: TestClient) -> tuple[bytes, str]:
    response = client.get("/api/v1/ledger/checkpoint")
    assert response.status_code == 200
    return response.content, response.headers["DV-Witnessed"]


def cosigned_sizes(server: WitnessServer, origin: str) -> int:
    assert server.store is not None
    state = server.store.state(origin)
    assert state is not None
    return state.size


def test_both_witnesses_cosign_and_the_checkpoint_carries_their_lines(
    client: TestClient,
    db: Database,
    ledger: Ledger,
    configured: list[WitnessServer],
    http: cosigner.httpx.Client,
) -> None:
    append(db, ledger, 5)
    answers = cosigner.cosign_newest(db, http)
    assert [(a.cosigned, a.size) for a in answers] == [(True, 5), (True, 5)]
    note_text, witnessed = served(client)
    assert witnessed == "yes"
    assert note_text.count("\n— ".encode()) == 3  # the log's signature and two cosignatures
    # The tlog-tiles checkpoint is the same note, with the witnesses' lines.
    assert client.get("/ledger/checkpoint").content == note_text
    # The proof file carries them too: `dv verify --witness` checks them offline.
    proof = client.get("/api/v1/ledger/entries/2/proof").content
    keys = [server.vkey for server in configured]
    verified = verify_proof(proof, ledger.vkey, witnesses=keys, quorum=2)
    assert verified.witnesses is not None
    assert {name for name, _ in verified.witnesses.cosigned} == {
        "witness.deyang.example/nyj",
        "witness.sichuan.example/trace",
    }
    info = client.get("/api/v1/ledger").json()["witnesses"]
    assert info["witnessed"] and info["cosigned_by"] == sorted(
        ["德阳市农业农村局", "四川省追溯平台"]
    )
    # Nothing is asked again once every witness has cosigned the newest checkpoint.
    assert cosigner.cosign_newest(db, http) == []
    # Growing: each witness is asked with the proof from the size it cosigned.
    append(db, ledger, 4, start=5)
    assert all(a.cosigned for a in cosigner.cosign_newest(db, http))
    assert [cosigned_sizes(s, ledger.origin) for s in configured] == [9, 9]


def test_a_witness_down_during_appends_catches_up_when_back(
    client: TestClient,
    db: Database,
    ledger: Ledger,
    configured: list[WitnessServer],
    http: cosigner.httpx.Client,
) -> None:
    _, province = configured
    append(db, ledger, 3)
    assert all(a.cosigned for a in cosigner.cosign_newest(db, http))
    province.stop()
    for start in range(3, 30, 3):
        append(db, ledger, 3, start=start)
        answers = {a.witness: a for a in cosigner.cosign_newest(db, http)}
        assert answers["德阳市农业农村局"].cosigned
        assert not answers["四川省追溯平台"].cosigned
        assert "unreachable" in answers["四川省追溯平台"].detail
    # Appends went on; the newest checkpoint has one cosignature of the two.
    _, witnessed = served(client)
    assert witnessed == "yes"  # the log's own quorum is 1 (DV_WITNESS_QUORUM)
    proof = client.get("/api/v1/ledger/entries/7/proof").content
    keys = [server.vkey for server in configured]
    with pytest.raises(VerificationError, match="1 of the 2 required"):
        verify_proof(proof, ledger.vkey, witnesses=keys, quorum=2)
    with db.session() as session:
        row = session.get(LedgerWitness, "四川省追溯平台")
        assert row is not None and row.last_error and row.last_error.startswith("unreachable")
    province.start()
    answers = {a.witness: a for a in cosigner.cosign_newest(db, http)}
    assert answers["四川省追溯平台"].cosigned, answers
    assert cosigned_sizes(province, ledger.origin) == 30
    proof = client.get("/api/v1/ledger/entries/7/proof").content
    verify_proof(proof, ledger.vkey, witnesses=keys, quorum=2)


def test_a_lost_record_of_the_witness_size_is_mended_by_its_409(
    db: Database, ledger: Ledger, configured: list[WitnessServer], http: cosigner.httpx.Client
) -> None:
    append(db, ledger, 4)
    cosigner.cosign_newest(db, http)
    with db.transaction() as session:
        for row in witnesses.configured(session):
            row.known_size = 0
    append(db, ledger, 4, start=4)
    answers = cosigner.cosign_newest(db, http)
    assert all(a.cosigned for a in answers), answers
    with db.session() as session:
        assert [w.known_size for w in witnesses.configured(session)] == [8, 8]


def test_witnesses_refuse_a_history_rewritten_behind_their_back(
    client: TestClient,
    db: Database,
    ledger: Ledger,
    configured: list[WitnessServer],
    http: cosigner.httpx.Client,
) -> None:
    append(db, ledger, 8)
    assert all(a.cosigned for a in cosigner.cosign_newest(db, http))
    # Someone with the database and the signing key drops entries 5.. and writes others:
    # the log signs the new tree (it extends the checkpoint of size 5 it still has).
    with db.transaction() as session:
        session.execute(delete(LedgerCheckpoint).where(LedgerCheckpoint.size > 5))
        session.execute(delete(LedgerHash).where(LedgerHash.idx >= merkle.stored_hash_count(5)))
        session.execute(delete(LedgerEntry).where(LedgerEntry.seq >= 5))
    with db.transaction() as session:
        ledger.append_many(session, [EntryIn("test.event", {"rewritten": n}) for n in range(6)])
    answers = cosigner.cosign_newest(db, http)
    assert [a.cosigned for a in answers] == [False, False]
    assert all("422" in a.detail for a in answers), answers
    for server in configured:
        assert server.store is not None
        assert cosigned_sizes(server, ledger.origin) == 8
        assert len(server.store.refusals(ledger.origin)) == 1
    _, witnessed = served(client)
    assert witnessed == "no"
    # Even told to start from scratch, a witness does not cosign the other history.
    with db.transaction() as session:
        for row in witnesses.configured(session):
            row.known_size = 0
    answers = cosigner.cosign_newest(db, http)
    assert [a.cosigned for a in answers] == [False, False]


def test_dv_verify_holds_the_witness_policy(
    tmp_path: Path,
    client: TestClient,
    db: Database,
    ledger: Ledger,
    configured: list[WitnessServer],
    http: cosigner.httpx.Client,
) -> None:
    city, province = configured
    append(db, ledger, 3)
    province.stop()
    cosigner.cosign_newest(db, http)
    proof = tmp_path / "entry-1.tlog-proof"
    proof.write_bytes(client.get("/api/v1/ledger/entries/1/proof").content)
    base = ["verify", str(proof), "--vkey", ledger.vkey]
    both = ["--witness", city.vkey, "--witness", province.vkey]
    result = CliRunner().invoke(dv_app, [*base, *both, "--quorum", "1"])
    assert result.exit_code == 0, result.output
    assert "witnessed: 1 of 2 trusted witnesses cosigned (quorum 1)" in result.output
    assert "not cosigned by witness.sichuan.example/trace" in result.output
    result = CliRunner().invoke(dv_app, [*base, *both, "--quorum", "2"])
    assert result.exit_code == 1
    assert "not witnessed: 1 of the 2 required" in result.output
    # Without --quorum every witness named must have cosigned.
    assert CliRunner().invoke(dv_app, [*base, *both]).exit_code == 1
    result = CliRunner().invoke(dv_app, [*base, "--witness", city.vkey, "--quorum", "1"])
    assert result.exit_code == 0, result.output


def test_a_request_for_an_older_checkpoint_than_the_witness_has_is_no_failure(
    db: Database, ledger: Ledger, configured: list[WitnessServer], http: cosigner.httpx.Client
) -> None:
    """Two processes of one log ask at once: the one with the older checkpoint is told the
    newer size; that is not a refusal, and nothing is recorded against the witness."""
    append(db, ledger, 5)
    append(db, ledger, 3, start=5)
    assert all(a.cosigned for a in cosigner.cosign_newest(db, http))
    city = configured[0]
    stale_view = cosigner.WitnessConfig("德阳市农业农村局", city.vkey, city.url, known_size=0)
    answer = cosigner.ask_witness(db, http, stale_view, 5)
    assert (answer.cosigned, answer.superseded) == (False, True)
    with db.session() as session:
        row = session.get(LedgerWitness, "德阳市农业农村局")
        assert row is not None and row.last_error is None and row.known_size == 8


def test_the_monitor_alerts_on_a_checkpoint_short_of_its_witnesses(
    client: TestClient,
    db: Database,
    ledger: Ledger,
    configured: list[WitnessServer],
    http: cosigner.httpx.Client,
) -> None:
    waited: list[float] = []
    policy = monitor.WitnessPolicy([s.vkey for s in configured], 2, wait=waited.append)

    def fetch(path: str) -> bytes | None:
        response = client.get(path)
        return None if response.status_code == 404 else response.content

    append(db, ledger, 4)
    cosigner.cosign_newest(db, http)
    first = monitor.look(fetch, ledger.vkey, None, policy)
    assert first.cosigned_by == ("witness.deyang.example/nyj", "witness.sichuan.example/trace")
    assert "witnessed by" in first.summary and waited == []
    configured[1].stop()
    append(db, ledger, 2, start=4)
    cosigner.cosign_newest(db, http)
    with pytest.raises(monitor.MonitorAlert, match="size 6 is not witnessed: 1 of the 2"):
        monitor.look(fetch, ledger.vkey, first.signed, policy)
    assert waited == list(monitor.WITNESS_WAITS)  # it gave the witnesses their moment first
    # One of the two is enough for a monitor whose quorum is 1.
    relaxed = monitor.WitnessPolicy(policy.keys, 1, wait=waited.append)
    assert monitor.look(fetch, ledger.vkey, first.signed, relaxed).summary.startswith(
        "consistent: size 4 -> 6"
    )
