"""The stored log: appends in the caller's transaction, checkpoints, proofs, audit, tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digital_village.config import Settings
from digital_village.ledger import audit, keys, log, merkle, note
from digital_village.ledger.log import EntryIn, Ledger, LedgerIntegrityError
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerHash
from digital_village.ledger.proof import TlogProof
from digital_village.ledger.verify import VerificationError, verify_proof


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


def fill(session: Session, ledger: Ledger, count: int, *, per_tx: int = 1) -> None:
    for start in range(0, count, per_tx):
        items = [
            EntryIn("test.event", {"n": n, "名": "油菜"})
            for n in range(start, min(count, start + per_tx))
        ]
        ledger.append_many(session, items)


def run_audit(session: Session, ledger: Ledger) -> audit.AuditReport:
    return audit.audit(session, origin=ledger.origin)


def test_entries_are_stored_verbatim_and_chained(session: Session, ledger: Ledger) -> None:
    first = ledger.append(session, kind="parcel.registered", data={"dkbm": "5106031012010100001"})
    second = ledger.append(session, kind="parcel.changed", data={"dkbm": "5106031012010100001"})
    assert (first.seq, second.seq) == (0, 1)
    stored = session.get(LedgerEntry, 1)
    assert stored is not None and stored.body == second.body
    envelope = json.loads(second.body)
    assert envelope["prev"] == first.leaf_hash.hex()
    assert envelope["kind"] == "parcel.changed"
    assert second.leaf_hash == merkle.hash_leaf(second.body)


def test_every_append_transaction_signs_a_checkpoint(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 7, per_tx=3)
    sizes = session.scalars(select(LedgerCheckpoint.size).order_by(LedgerCheckpoint.size)).all()
    assert sizes == [3, 6, 7]
    latest = log.latest_checkpoint(session)
    assert latest is not None
    opened = note.open_note(latest.note, ledger.vkey)
    checkpoint = note.Checkpoint.parse(opened.text)
    assert checkpoint.origin == ledger.origin and checkpoint.size == 7
    bodies = session.scalars(select(LedgerEntry.body).order_by(LedgerEntry.seq)).all()
    assert checkpoint.root_hash == merkle.root_of([merkle.hash_leaf(b) for b in bodies])


def test_inclusion_proof_files_verify_offline(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 13, per_tx=4)
    for seq in (0, 5, 12):
        proof = log.inclusion_proof_file(session, seq)
        verified = verify_proof(proof, ledger.vkey)
        assert verified.index == seq and verified.tree_size == 13
        parsed = TlogProof.parse(proof)
        assert parsed.extra == log.get_entry(session, seq).body
    older = log.inclusion_proof_file(session, 2, size=4)
    assert verify_proof(older, ledger.vkey).tree_size == 4
    with pytest.raises(VerificationError):
        verify_proof(log.inclusion_proof_file(session, 3), ledger.vkey, entry=b'{"forged":true}')


def test_consistency_between_checkpoints(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 5)
    old_note = log.checkpoint_at(session, 2).note
    proof = log.consistency_proof_file(session, 2, 5)
    current = log.inclusion_proof_file(session, 4)
    verified = verify_proof(
        current, ledger.vkey, previous_checkpoint=old_note, consistency_proof=proof
    )
    assert verified.previous is not None and verified.previous.size == 2


def test_chain_keys_link_entries_about_one_thing(session: Session, ledger: Ledger) -> None:
    a1 = ledger.append(session, kind="lot.event", data={"i": 1}, chain_key="lot:A")
    ledger.append(session, kind="lot.event", data={"i": 2}, chain_key="lot:B")
    a2, a3 = ledger.append_many(
        session,
        [EntryIn("lot.event", {"i": 3}, "lot:A"), EntryIn("lot.event", {"i": 4}, "lot:A")],
    )
    assert json.loads(a2.body)["chain"] == {"key": "lot:A", "prev": a1.leaf_hash.hex()}
    assert json.loads(a3.body)["chain"]["prev"] == a2.leaf_hash.hex()
    assert session.get(LedgerEntry, a3.seq).chain_prev_seq == a2.seq  # type: ignore[union-attr]
    assert run_audit(session, ledger).ok


def test_audit_passes_on_an_honest_log(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 40, per_tx=7)
    report = run_audit(session, ledger)
    assert report.ok, report.problems
    assert report.entries == 40 and report.checkpoints == 6
    assert report.stored_hashes == merkle.stored_hash_count(40)


def test_audit_names_an_edited_entry(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 10)
    session.execute(
        update(LedgerEntry).where(LedgerEntry.seq == 6).values(body=b'{"kind":"forged"}')
    )
    report = run_audit(session, ledger)
    assert not report.ok
    assert report.problems[0].index == 6
    assert "leaf hash" in report.problems[0].what


def test_audit_names_a_consistently_rewritten_entry(session: Session, ledger: Ledger) -> None:
    """Bytes and leaf hash rewritten together: the tree hashes and checkpoints still catch it."""
    fill(session, ledger, 10)
    forged = log.get_entry(session, 3).body.replace(b'"n":3', b'"n":99')
    session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.seq == 3)
        .values(body=forged, leaf_hash=merkle.hash_leaf(forged))
    )
    report = run_audit(session, ledger)
    assert report.problems[0].index == 3
    assert any("tree hash" in p.what or "root" in p.what for p in report.problems)


def test_audit_detects_removed_entries(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 8)
    session.execute(
        LedgerHash.__table__.delete().where(LedgerHash.idx >= merkle.stored_hash_count(6))
    )
    session.execute(LedgerEntry.__table__.delete().where(LedgerEntry.seq >= 6))
    report = run_audit(session, ledger)
    assert not report.ok
    assert any("entries were removed" in p.what for p in report.problems)


def test_audit_detects_a_forged_checkpoint_signature(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 4)
    stored = log.checkpoint_at(session, 2)
    forged = stored.note.replace(b"\n\n", b"\nextension\n\n", 1)
    session.execute(update(LedgerCheckpoint).where(LedgerCheckpoint.size == 2).values(note=forged))
    report = run_audit(session, ledger)
    assert [p.index for p in report.problems] == [1]
    assert "signature" in report.problems[0].what


def test_log_refuses_to_sign_after_tampering(session: Session, ledger: Ledger) -> None:
    fill(session, ledger, 6)
    # The hash of the subtree over entries 0..3: every later root is built on it.
    subtree = merkle.stored_hash_index(2, 0)
    session.execute(update(LedgerHash).where(LedgerHash.idx == subtree).values(hash=b"\x00" * 32))
    with pytest.raises(LedgerIntegrityError, match="refusing to sign"):
        ledger.append(session, kind="test.event", data={"n": 6})


def test_a_rotated_key_keeps_old_checkpoints_verifiable(
    session: Session, ledger: Ledger, settings: Settings, tmp_path: Path
) -> None:
    fill(session, ledger, 3)
    new_key = tmp_path / "new.key"
    keys.ensure_signing_key(new_key, settings.ledger_origin)
    rotated = Ledger.from_key_file(new_key, settings.ledger_origin)
    fill(session, rotated, 2)
    assert rotated.key_id != ledger.key_id
    report = run_audit(session, rotated)
    assert report.ok, report.problems
    assert len(log.verifier_keys(session)) == 2


def test_entries_must_be_json(session: Session, ledger: Ledger) -> None:
    from digital_village.errors import Invalid

    with pytest.raises(Invalid, match="canonical JSON"):
        ledger.append(session, kind="bad", data={"x": float("nan")})
