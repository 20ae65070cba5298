"""``dv trace`` and the demo's season, as a shell user meets them."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft7Validator
from typer.testing import CliRunner

from digital_village.cli.main import app
from digital_village.demo import village_season
from tests.conftest import GS1_EPCIS_SCHEMA
from tests.trace.test_epcis import FORMATS

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def dv(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_the_demo_season_and_dv_trace(cli_env: Path, tmp_path: Path) -> None:
    code, output = dv("demo", "--no-serve", "--fixtures", str(FIXTURES))
    assert code == 0, output
    assert "A season on the chain" in output and "合格证" in output
    bottles = (village_season.OIL_5L, output.split(f"{village_season.OIL_5L}/")[1].split()[0])
    code, shown = dv("trace", "show", *bottles, "--json")
    assert code == 0, shown
    graph = json.loads(shown)
    kinds = {node["type"] for node in graph["nodes"]}
    assert {"lot", "parcel", "household", "event"} <= kinds
    assert graph["flags"] == []
    parcel = next(node["id"] for node in graph["nodes"] if node["type"] == "parcel")
    code, recalled = dv("trace", "recall", parcel)
    assert code == 0 and "forward from" in recalled and "unit" in recalled
    exported = tmp_path / "bottles.json"
    code, output = dv("trace", "export", *bottles, "-o", str(exported))
    assert code == 0 and "wrote" in output
    document = json.loads(exported.read_text("utf-8"))
    if GS1_EPCIS_SCHEMA.is_file():
        schema = Draft7Validator(
            json.loads(GS1_EPCIS_SCHEMA.read_text("utf-8")), format_checker=FORMATS
        )
        assert [e.message for e in schema.iter_errors(document)] == []
    # Captured once: the same document again is refused, and nothing changes.
    code, output = dv("trace", "capture", str(exported))
    assert code == 1 and "already captured" in output
    # A second demo run finds the season and adds nothing.
    code, output = dv("demo", "--no-serve", "--fixtures", str(FIXTURES))
    assert code == 0 and "already on the chain" in output
    # Products and certificates of the same village from the command line.
    code, output = dv(
        "trace", "products", "add", "6923456000414", "菜籽饼", "--cooperative", "93510603MA6DX0001T"
    )
    assert code == 0 and "registered 06923456000414" in output, output
    code, output = dv("trace", "products", "add", "6923456000413", "x", "--cooperative", "1")
    assert code == 1 and "check digit" in output
    code, listed = dv("trace", "products", "list", "--json")
    assert "06923456000414" in {row["gtin"] for row in json.loads(listed)}
    code, output = dv("trace", "products", "edit", "6923456000414", "--name", "压榨菜籽饼")
    assert code == 0 and "压榨菜籽饼 (other, KGM) changed; ledger entry" in output, output
    code, output = dv("trace", "products", "edit", "6923456000414", "--name", "压榨菜籽饼")
    assert code == 0 and "unchanged" in output, output
    code, output = dv("trace", "products", "edit", "6923456000414", "--net", "5 LTR")
    assert code == 1 and "counted in pieces" in output, output
    code, output = dv("trace", "products", "edit", "6923456000414", "--net", "five")
    assert code == 1 and "--net must look like" in output, output
    year, _ = village_season.seasons(village_season.parcels.today())
    code, output = dv(
        "trace",
        "certificate",
        village_season.OIL,
        f"CY{year}-01",
        "--contact",
        "0838-6200009",
        "--basis",
        "self_testing",
    )
    assert code == 0 and "承诺达标合格证" in output and "产地 旌阳区孝泉镇" in output, output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "EPCISDocument", "epcisBody": {}}), "utf-8")
    code, output = dv("trace", "capture", str(bad))
    assert code == 1 and "not a valid EPCIS 2.0 document" in output and "/creationDate" in output
