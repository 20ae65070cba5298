"""The log verifies with Go's golang.org/x/mod/sumdb/{note,tlog}: an independent implementation.

Needs Go and Debian's golang-golang-x-mod-dev (CI installs both); skipped elsewhere, saying so.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.config import Settings
from digital_village.ledger import log
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerEntry, LedgerHash
from digital_village.ledger.proof import ConsistencyProof, TlogProof

GOPATH = Path("/usr/share/gocode")
CHECKER = Path(__file__).resolve().parents[1] / "interop" / "tlogcheck.go"


def _go() -> str:
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must have Go and golang-golang-x-mod-dev for the interop test")
        pytest.skip(
            "Go or golang.org/x/mod sources missing "
            "(apt-get install golang-go golang-golang-x-mod-dev)"
        )
    return go


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_go_sumdb_verifies_our_log(session: Session, settings: Settings, tmp_path: Path) -> None:
    go = _go()
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    for start in range(0, 37, 5):
        ledger.append_many(
            session, [EntryIn("interop", {"n": n}) for n in range(start, min(37, start + 5))]
        )
    latest = log.latest_checkpoint(session)
    assert latest is not None and latest.size == 37
    entries = session.scalars(select(LedgerEntry.body).order_by(LedgerEntry.seq)).all()
    stored = {str(i): b64(h) for i, h in session.execute(select(LedgerHash.idx, LedgerHash.hash))}
    inclusion = []
    for index in (0, 1, 17, 31, 36):
        proof = TlogProof.parse(log.inclusion_proof_file(session, index))
        inclusion.append({"index": index, "proof": [b64(h) for h in proof.inclusion_proof]})
    consistency = []
    for old in (5, 20, 35):  # sizes where a checkpoint was signed (every 5 appends)
        proof = ConsistencyProof.parse(log.consistency_proof_file(session, old, 37))
        old_root = b64(log.checkpoint_at(session, old).root_hash)
        hashes = [b64(h) for h in proof.hashes]
        consistency.append({"old_size": old, "old_root": old_root, "proof": hashes})
    document = {
        "vkey": ledger.vkey,
        "checkpoint": latest.note.decode(),
        "entries": [b64(e) for e in entries],
        "stored_hashes": stored,
        "inclusion": inclusion,
        "consistency": consistency,
    }
    data = tmp_path / "log.json"
    data.write_text(json.dumps(document))
    env = {
        **os.environ,
        "GOPATH": str(GOPATH),
        "GO111MODULE": "off",
        "GOCACHE": str(tmp_path / "gocache"),
        "GOFLAGS": "",
    }
    result = subprocess.run(
        [go, "run", str(CHECKER), str(data)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: 37 entries")

    # And it is not a checker that says ok to anything: a forged root fails.
    forged = dict(document, entries=[*document["entries"][:-1], b64(b'{"forged":true}')])
    data.write_text(json.dumps(forged))
    result = subprocess.run(
        [go, "run", str(CHECKER), str(data)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 1 and "FAIL" in result.stdout
