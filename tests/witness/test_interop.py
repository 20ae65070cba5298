"""Go's golang.org/x/mod/sumdb/note opens our cosigned checkpoints: an independent check of the
cosignature/v1 bytes (tests/interop/cosigcheck.go, written from the C2SP text alone)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from digital_village.ledger import cosignature, note
from tests.ledger.test_go_interop import GOPATH, _go
from tests.witness.conftest import FakeLog, new_cosigner

CHECKER = Path(__file__).resolve().parents[1] / "interop" / "cosigcheck.go"


def go_open(tmp_path: Path, vkey: str, witnesses: list[str], checkpoint: bytes) -> tuple[int, str]:
    go = _go()
    data = tmp_path / "cosigned.json"
    document = {"vkey": vkey, "witnesses": witnesses, "checkpoint": checkpoint.decode()}
    data.write_text(json.dumps(document))
    env = {**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off"}
    env["GOCACHE"] = str(tmp_path / "gocache")
    result = subprocess.run(
        [go, "run", str(CHECKER), str(data)], capture_output=True, text=True, env=env, timeout=300
    )
    return result.returncode, result.stdout + result.stderr


def test_go_verifies_our_cosignatures_and_refuses_a_forged_one(tmp_path: Path) -> None:
    log = FakeLog().grow(12)
    signed = log.checkpoint()
    body = note.parse_note(signed).text
    city, province = new_cosigner("witness.deyang.example/nyj"), new_cosigner("w.sichuan.example")
    cosigned = cosignature.add_signature_lines(
        signed, [city.cosign(body, 1_796_000_000), province.cosign(body, 1_796_000_001)]
    )
    keys = [city.verifier().to_string(), province.verifier().to_string()]
    code, output = go_open(tmp_path, log.vkey, keys, cosigned)
    assert code == 0, output
    assert output.splitlines() == [
        f"{log.origin} 0",
        "witness.deyang.example/nyj 1796000000",
        "w.sichuan.example 1796000001",
    ]
    # One changed bit of the province's timestamp: Go refuses the note, as we do.
    forged_line = province.cosign(body, 1_796_000_001)
    raw = bytearray(base64.b64decode(forged_line.split(" ")[2]))
    raw[11] ^= 1
    forged = cosignature.add_signature_lines(
        signed, [f"— w.sichuan.example {base64.b64encode(bytes(raw)).decode()}\n"]
    )
    code, output = go_open(tmp_path, log.vkey, keys, forged)
    assert code == 1 and "invalid signature" in output, output
    assert not cosignature.check_cosignatures(forged, keys[1:], 1).met
