"""The ``dv`` command as a shell user meets it: output, exit codes, and what it stores."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from digital_village.cli.main import app

runner = CliRunner()


def dv(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_commands_before_init_say_to_run_init(cli_env: Path) -> None:
    code, output = dv("regions", "list")
    assert code == 2
    assert "dv init" in output


def test_init_migrates_seeds_and_makes_a_private_key(cli_env: Path) -> None:
    code, output = dv("init")
    assert code == 0, output
    assert "migrated" in output
    key = cli_env / "ledger.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert key.read_text().startswith("PRIVATE+KEY+")
    code, output = dv("init")  # a second run changes nothing and keeps the key
    assert code == 0 and "already at migration" in output and "kept" in output
    code, output = dv("regions", "list", "--json")
    codes = {row["code"]: row["name"] for row in json.loads(output)}
    assert codes["510603"] == "旌阳区"
    assert codes["510603101"] == "孝泉镇"
    assert len([c for c in codes if len(c) == 9]) == 13


def test_regions_add_checks_code_and_parent(cli_env: Path) -> None:
    assert dv("init")[0] == 0
    code, output = dv("regions", "add", "510603101201", "民安村")
    assert code == 0, output
    code, output = dv("regions", "add", "51060310120101", "一组")
    assert code == 0, output
    code, output = dv("regions", "add", "510603999201", "无名村")
    assert code == 1 and "parent region 510603999" in output
    code, output = dv("regions", "add", "5106031012", "太短")
    assert code == 1 and "10 digits" in output
    code, output = dv("regions", "add", "510603101201", "重复")
    assert code == 1 and "already exists" in output
    listed = json.loads(dv("regions", "list", "--parent", "510603101201", "--json")[1])
    assert [row["code"] for row in listed] == ["51060310120101"]


def test_tokens_create_list_revoke(cli_env: Path) -> None:
    assert dv("init")[0] == 0
    code, output = dv("tokens", "create", "--role", "admin", "--json")
    assert code == 0, output
    made = json.loads(output)
    assert made["role"] == "admin" and made["token"].startswith("dv_")
    code, output = dv("tokens", "list", "--json")
    listed = json.loads(output)
    assert [row["id"] for row in listed] == [made["id"]]
    assert made["token"] not in output
    assert dv("tokens", "revoke", made["id"])[0] == 0
    assert json.loads(dv("tokens", "list", "--json")[1]) == []
    assert len(json.loads(dv("tokens", "list", "--all", "--json")[1])) == 1


def test_tokens_create_refuses_bad_scopes(cli_env: Path) -> None:
    assert dv("init")[0] == 0
    code, output = dv("tokens", "create", "--role", "manager")
    assert code == 1 and "--coop" in output
    code, output = dv("tokens", "create", "--role", "manager", "--coop", "91510000000000000X")
    assert code == 1 and "no cooperative" in output
    code, output = dv("tokens", "create", "--role", "wizard")
    assert code == 2
    code, output = dv("tokens", "create", "--role", "device", "--device", "42")
    assert code == 1 and "no device with id 42" in output
    assert json.loads(dv("tokens", "list", "--json")[1]) == []
