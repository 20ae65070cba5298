"""The witness's add-checkpoint call (c2sp.org/tlog-witness): what it cosigns and refuses."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from digital_village.ledger import cosignature, note
from digital_village.witness.app import create_witness_app
from digital_village.witness.protocol import Witness
from digital_village.witness.store import WitnessStore
from tests.witness.conftest import ORIGIN, FakeLog, new_cosigner

NOW = 1_796_000_000


@pytest.fixture
def log() -> FakeLog:
    return FakeLog().grow(10)


@pytest.fixture
def witness(tmp_path: Path, log: FakeLog) -> Iterator[Witness]:
    store = WitnessStore.in_folder(tmp_path)
    store.add_log(ORIGIN, log.vkey)
    yield Witness(store, new_cosigner("witness.deyang.example/nyj"), clock=lambda: NOW)
    store.close()


@pytest.fixture
def client(witness: Witness) -> Iterator[TestClient]:
    with TestClient(create_witness_app(witness)) as test_client:
        yield test_client


def add(client: TestClient, body: bytes) -> tuple[int, str, str]:
    response = client.post("/add-checkpoint", content=body)
    return response.status_code, response.text, response.headers["content-type"]


def test_first_checkpoint_is_cosigned_and_the_line_verifies(
    client: TestClient, witness: Witness, log: FakeLog
) -> None:
    status, body, _ = add(client, log.request(0))
    assert status == 200
    assert body.startswith("— witness.deyang.example/nyj ") and body.endswith("\n")
    signed = cosignature.add_signature_lines(log.checkpoint(), [body])
    check = cosignature.check_cosignatures(signed, [witness.cosigner.verifier().to_string()], 1)
    assert check.met and check.cosigned == (("witness.deyang.example/nyj", NOW),)
    # The log's own signature still opens with the log's key; the witness's line is extra.
    assert note.open_note(signed, log.vkey).signers == (ORIGIN,)
    assert witness.store.state(ORIGIN).size == 10  # type: ignore[union-attr]


def test_a_grown_log_with_its_consistency_proof_is_cosigned(
    client: TestClient, log: FakeLog
) -> None:
    assert add(client, log.request(0))[0] == 200
    log.grow(7)
    assert add(client, log.request(10))[0] == 200
    # Same checkpoint again: same size, same root, cosigned again.
    assert add(client, log.request(17))[0] == 200


def test_stale_old_size_is_409_with_the_size_the_witness_knows(
    client: TestClient, log: FakeLog
) -> None:
    assert add(client, log.request(0))[0] == 200
    log.grow(5)
    status, body, content_type = add(client, log.request(4))
    assert (status, body, content_type) == (409, "10\n", "text/x.tlog.size")
    # The client retries from the size it was told.
    assert add(client, log.request(10))[0] == 200


def test_old_size_zero_against_a_known_log_tells_the_size(client: TestClient, log: FakeLog) -> None:
    assert add(client, log.request(0))[0] == 200
    assert add(client, log.request(0))[:2] == (409, "10\n")


def test_a_bad_consistency_proof_is_422(client: TestClient, log: FakeLog) -> None:
    assert add(client, log.request(0))[0] == 200
    log.grow(6)
    proof = log.tree.consistency_proof(10, 16)
    proof[0] = bytes(32)
    status, _, _ = add(client, log.request(10, proof=proof))
    assert status == 422
    assert add(client, log.request(10, proof=[]))[0] == 422


def test_a_proof_from_size_zero_must_be_empty(client: TestClient, log: FakeLog) -> None:
    assert add(client, log.request(0, proof=[bytes(32)]))[0] == 422


def test_an_unknown_log_is_404(client: TestClient) -> None:
    stranger = FakeLog(origin="other.example/log").grow(3)
    assert add(client, stranger.request(0))[0] == 404


def test_a_checkpoint_signed_by_another_key_is_403(client: TestClient, log: FakeLog) -> None:
    # The right origin, signed by a key the witness was not given.
    impostor = FakeLog(origin=ORIGIN).grow(10)
    status, body, _ = add(client, impostor.request(0))
    assert status == 403
    assert "no signature from a trusted key" in body


def test_an_old_size_beyond_the_checkpoint_is_400(client: TestClient, log: FakeLog) -> None:
    assert add(client, log.request(11, proof=[]))[0] == 400


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 01\n\nx",
        b"old -1\n\n",
        b"new 3\n\n",
        b"old 3\nnot base64!\n\n",
        b"old 3\n" + base64.b64encode(bytes(31)) + b"\n\n",
        b"old 0\n" + b"".join(base64.b64encode(bytes(32)) + b"\n" for _ in range(64)) + b"\n",
        b"old 0\n\nno checkpoint here\n",
    ],
)
def test_malformed_requests_are_400(client: TestClient, body: bytes) -> None:
    assert add(client, body)[0] == 400


def test_a_fork_at_the_same_size_is_refused_and_kept_as_evidence(
    client: TestClient, witness: Witness, log: FakeLog
) -> None:
    assert add(client, log.request(0))[0] == 200
    forked = FakeLog(signer=log.signer)
    forked.tree.append(b"a rewritten first entry")
    forked.grow(9)
    status, body, _ = add(client, forked.request(10, proof=[]))
    assert (status, body) == (409, "10\n")
    assert witness.store.refusals(ORIGIN) == [(10, "same size, other root")]
    assert witness.store.state(ORIGIN).root_hash == log.tree.root()  # type: ignore[union-attr]


def test_a_forked_log_that_grew_cannot_prove_consistency(
    client: TestClient, witness: Witness, log: FakeLog
) -> None:
    assert add(client, log.request(0))[0] == 200
    forked = FakeLog(signer=log.signer)
    forked.tree.append(b"a rewritten first entry")
    forked.grow(14)
    assert add(client, forked.request(10))[0] == 422
    assert [old for old, _ in witness.store.refusals(ORIGIN)] == [10]


def test_concurrent_requests_never_cosign_two_views(witness: Witness, log: FakeLog) -> None:
    """Many threads race from the same old size with different (consistent) new sizes and
    with a fork: the compare-and-set lets exactly one of them through."""
    witness.add_checkpoint(log.request(0))
    bodies = []
    for _ in range(8):
        log.grow(1)
        bodies.append(log.request(10))
    forked = FakeLog(signer=log.signer)
    forked.tree.append(b"fork")
    forked.grow(10)
    bodies.append(forked.request(10, proof=[]))
    results: list[int] = []
    barrier = threading.Barrier(len(bodies))

    def send(body: bytes) -> None:
        barrier.wait()
        try:
            witness.add_checkpoint(body)
            results.append(200)
        except Exception as refusal:
            results.append(getattr(refusal, "status", 500))

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(200) == 1
    assert set(results) <= {200, 409, 422}  # 422: the fork, checked before the state moved
    state = witness.store.state(ORIGIN)
    assert state is not None and state.size > 10
    assert state.root_hash == log.tree.root(state.size)


def test_a_second_key_for_the_log_is_a_rotation(
    client: TestClient, witness: Witness, log: FakeLog
) -> None:
    assert add(client, log.request(0))[0] == 200
    rotated = FakeLog(signer=note.Signer.parse(note.generate_signer_key(ORIGIN)))
    rotated.tree = log.tree
    log.grow(2)
    assert add(client, rotated.request(10))[0] == 403
    witness.store.add_log(ORIGIN, rotated.vkey)
    assert add(client, rotated.request(10))[0] == 200
