"""`dv witness` and `dv ledger witnesses` as a shell user meets them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from digital_village.cli.main import app
from digital_village.ledger import cosignature, keys
from digital_village.witness.store import WitnessStore

runner = CliRunner()


def dv(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_witness_key_is_made_private_once_and_its_vkey_printed_last(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "witness.key"
    code, output = dv("witness", "key", "--key", str(key), "--name", "witness.deyang.example/nyj")
    assert code == 0, output
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    vkey = output.strip().splitlines()[-1]
    verifier = cosignature.CosignatureVerifier.parse(vkey)
    assert verifier.name == "witness.deyang.example/nyj"
    before = key.read_bytes()
    code, again = dv("witness", "key", "--key", str(key))
    assert code == 0 and again.strip().splitlines()[-1] == vkey
    assert key.read_bytes() == before
    code, output = dv("witness", "key", "--key", str(key), "--name", "other.example/w")
    assert code == 2 and "already holds" in output


def test_witness_logs_add_and_list(cli_env: Path) -> None:
    log_key = cli_env / "log.key"
    keys.ensure_signing_key(log_key, "dv.example.cn/ledger")
    vkey = keys.verifier_key(log_key)
    code, output = dv("witness", "logs", "add", vkey)
    assert code == 0 and "now witnessing dv.example.cn/ledger" in output
    assert dv("witness", "logs", "add", vkey)[1].startswith("already witnessing")
    store = WitnessStore.in_folder(cli_env)
    state = store.state("dv.example.cn/ledger")
    assert state is not None and state.vkeys == (vkey,) and state.size == 0
    store.close()
    code, output = dv("witness", "logs", "list")
    assert "dv.example.cn/ledger  size 0" in output and vkey in output
    code, output = dv("witness", "logs", "add", "not-a-key")
    assert code == 2
    code, output = dv("witness", "serve", "--key", str(cli_env / "missing.key"))
    assert code == 2 and "dv witness key" in output


def test_ledger_witnesses_add_list_remove(cli_env: Path) -> None:
    assert dv("init", "--no-seed")[0] == 0
    wvkey = (
        cosignature.Cosigner.parse(cosignature.generate_cosigner_key("witness.deyang.example/nyj"))
        .verifier()
        .to_string()
    )
    code, output = dv("ledger", "witnesses", "add", "deyang", wvkey, "https://w.deyang.example/")
    assert code == 0, output
    code, output = dv("ledger", "witnesses", "add", "deyang", wvkey, "https://w.deyang.example")
    assert code == 1 and "already configured" in output
    log_vkey = keys.verifier_key(cli_env / "ledger.key")
    code, output = dv("ledger", "witnesses", "add", "bad", log_vkey, "https://x.example")
    assert code == 1 and "cosignature/v1" in output
    code, output = dv("ledger", "witnesses", "list")
    assert code == 0 and "deyang  https://w.deyang.example  cosigned size 0" in output
    assert "NOT witnessed" in output
    assert dv("ledger", "witnesses", "remove", "deyang")[0] == 0
    assert dv("ledger", "witnesses", "remove", "deyang")[0] == 1
