"""The ledger as outsiders meet it: public routes, `dv verify`, `dv ledger verify`, the monitor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from digital_village.cli import ledger as ledger_cli
from digital_village.cli.main import app as dv_app
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerEntry

runner = CliRunner()


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


def append(db: Database, ledger: Ledger, count: int, start: int = 0) -> None:
    with db.transaction() as session:
        ledger.append_many(
            session, [EntryIn("test.event", {"n": n}) for n in range(start, start + count)]
        )


def test_empty_log_has_no_checkpoint(client: TestClient) -> None:
    response = client.get("/api/v1/ledger/checkpoint")
    assert response.status_code == 404
    assert client.get("/api/v1/ledger").json()["size"] == 0


def test_public_routes_serve_checkpoint_entry_and_proofs(
    client: TestClient, db: Database, ledger: Ledger, tmp_path: Path
) -> None:
    append(db, ledger, 5)
    info = client.get("/api/v1/ledger").json()
    assert info["size"] == 5 and info["verifier_key"] == ledger.vkey
    checkpoint = client.get("/api/v1/ledger/checkpoint")
    assert checkpoint.headers["content-type"].startswith("text/plain")
    assert checkpoint.text.startswith(f"{ledger.origin}\n5\n")
    assert "\n\n— " in checkpoint.text
    entry = client.get("/api/v1/ledger/entries/3")
    assert json.loads(entry.content)["data"] == {"n": 3}
    proof = client.get("/api/v1/ledger/entries/3/proof")
    assert proof.status_code == 200
    assert "entry-3.tlog-proof" in proof.headers["content-disposition"]
    assert client.get("/api/v1/ledger/key").text.strip() == ledger.vkey
    assert client.get("/api/v1/ledger/entries/99/proof").status_code == 404
    assert client.get("/api/v1/ledger/consistency?first=4&second=9").status_code == 422

    proof_file = tmp_path / "entry-3.tlog-proof"
    proof_file.write_bytes(proof.content)
    result = runner.invoke(dv_app, ["verify", str(proof_file), "--vkey", ledger.vkey])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and "entry 3" in result.output

    forged = tmp_path / "forged.json"
    forged.write_bytes(entry.content.replace(b'"n":3', b'"n":4'))
    result = runner.invoke(
        dv_app, ["verify", str(proof_file), "--vkey", ledger.vkey, "--entry", str(forged)]
    )
    assert result.exit_code == 1 and "FAILED" in result.output


def test_dv_verify_checks_consistency_with_an_earlier_checkpoint(
    client: TestClient, db: Database, ledger: Ledger, tmp_path: Path
) -> None:
    append(db, ledger, 3)
    old = tmp_path / "old.checkpoint"
    old.write_bytes(client.get("/api/v1/ledger/checkpoint").content)
    append(db, ledger, 4, start=3)
    proof = tmp_path / "p.tlog-proof"
    proof.write_bytes(client.get("/api/v1/ledger/entries/6/proof").content)
    consistency = tmp_path / "c.proof"
    consistency.write_bytes(client.get("/api/v1/ledger/consistency?first=3&second=7").content)
    vkey_file = tmp_path / "vkey"
    vkey_file.write_text(ledger.vkey + "\n")
    args = ["verify", str(proof), "--vkey", str(vkey_file), "--previous", str(old)]
    result = runner.invoke(dv_app, [*args, "--consistency", str(consistency)])
    assert result.exit_code == 0, result.output
    assert "consistent" in result.output
    wrong = tmp_path / "wrong.proof"
    wrong.write_bytes(client.get("/api/v1/ledger/consistency?first=2&second=7").content)
    result = runner.invoke(dv_app, [*args, "--consistency", str(wrong)])
    assert result.exit_code == 1


def test_monitor_detects_a_replayed_old_checkpoint(
    client: TestClient,
    db: Database,
    ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: dict[str, bytes] = {}

    def fetch(url: str, *, missing_ok: bool = False) -> bytes | None:
        path = url.removeprefix("http://dv.test")
        if path == "/api/v1/ledger/checkpoint" and "replay" in served:
            return served["replay"]
        response = client.get(path)
        if missing_ok and response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.content

    monkeypatch.setattr(ledger_cli, "_fetch", fetch)
    args = ["ledger", "monitor", "http://dv.test", "--state", str(tmp_path / "m"), "--once"]
    append(db, ledger, 2)
    old = client.get("/api/v1/ledger/checkpoint").content
    first = runner.invoke(dv_app, [*args, "--vkey", ledger.vkey])
    assert first.exit_code == 0 and "first checkpoint: size 2" in first.output
    append(db, ledger, 3, start=2)
    second = runner.invoke(dv_app, args)
    assert second.exit_code == 0 and "consistent: size 2 -> 5" in second.output
    served["replay"] = old
    third = runner.invoke(dv_app, args)
    assert third.exit_code == 1
    assert "went back from size 5 to 2" in third.output


def test_dv_ledger_verify_exit_codes(cli_env: Path) -> None:
    """The audit command over a real database: 0 when honest, 1 naming the bad index."""
    assert runner.invoke(dv_app, ["init"]).exit_code == 0
    settings = Settings()
    database = Database.from_url(settings.effective_database_url)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    append(database, ledger, 6)
    ok = runner.invoke(dv_app, ["ledger", "verify", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["entries"] == 6
    with database.transaction() as session:
        session.execute(update(LedgerEntry).where(LedgerEntry.seq == 4).values(body=b"{}"))
    bad = runner.invoke(dv_app, ["ledger", "verify"])
    assert bad.exit_code == 1
    assert "index 4" in bad.output
    database.dispose()


def test_key_show_prints_the_verifier_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_cli, "load_settings", lambda: settings)
    result = runner.invoke(dv_app, ["ledger", "key", "show"])
    assert result.exit_code == 0
    assert result.output.startswith(settings.ledger_origin + "+")
    assert "PRIVATE" not in result.output
