"""Packages a clerk gets wrong, and `dv registry import` as a shell user meets it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from shapely.affinity import translate
from sqlalchemy import func, select
from typer.testing import CliRunner

from digital_village.auth.actor import Actor
from digital_village.cli.main import app
from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.parcels.models import Parcel
from digital_village.registry.importer import import_package
from digital_village.registry.package import PackageError, read_package
from tests.registry.factory import Generated, Spec, generate, write
from tests.registry.test_import import DAY_ONE, county, ledger, run

__all__ = ["county", "ledger"]  # fixtures shared with test_import
runner = CliRunner()


@pytest.fixture(scope="module")
def package() -> Generated:
    return generate(Spec(villages=1, groups=2, households=3, parcels=2))


def parcel_count(db: Database) -> int:
    with db.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(Parcel)) or 0


def test_what_cannot_be_read_is_named(package: Generated, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PackageError, match="no DK layer"):
        read_package(empty)
    no_prj = write(package, tmp_path / "no-prj", prj=False)
    with pytest.raises(PackageError, match=r"DK5106032016\.shp has no \.prj and no --crs"):
        read_package(no_prj)
    assert read_package(no_prj, crs="EPSG:4544").crs == "EPSG:4544"
    prefixed = read_package(write(package, tmp_path / "prefixed", zone_prefix=True))
    assert prefixed.crs == "EPSG:4523"
    unlabelled = read_package(tmp_path / "prefixed", crs="EPSG:4544")  # zone 35 in front
    assert unlabelled.crs == "EPSG:4523" and "zone number 35" in (unlabelled.crs_note or "")
    six = copy.deepcopy(package)
    six.shapes = [translate(s, 18_000_000) for s in six.shapes]  # a 6° zone number in front
    with pytest.raises(PackageError, match="6° zone number"):
        read_package(write(six, tmp_path / "six", zone_prefix=False))
    mixed = copy.deepcopy(package)
    mixed.shapes[0] = translate(mixed.shapes[0], 35_000_000)
    with pytest.raises(PackageError, match="mixes zones"):
        read_package(write(mixed, tmp_path / "mixed"))
    edge = copy.deepcopy(package)  # 6° coordinates near the zone's edge, read as a 3° zone
    edge.shapes = [translate(s, 300_000) for s in edge.shapes]
    with pytest.raises(PackageError, match="outside the 3° zone of central meridian 105"):
        read_package(write(edge, tmp_path / "wrong-zone"))
    with pytest.raises(PackageError, match="6° zone"):
        read_package(write(package, tmp_path / "six-prj"), crs="EPSG:4508")


def test_a_table_in_another_encoding_names_file_row_and_field(
    package: Generated, tmp_path: Path
) -> None:
    folder = write(package, tmp_path / "pkg")  # GBK text with a .cpg saying GBK
    (folder / "CBF.cpg").write_text("UTF-8")  # …now claiming UTF-8
    with pytest.raises(PackageError, match=r"CBF\.dbf row 1 field CBFMC: the bytes .* not utf-8"):
        read_package(folder)
    as_csv = write(package, tmp_path / "csv", tables="csv")  # the same, as .csv tables
    (as_csv / "CBF.cpg").write_text("UTF-8")
    with pytest.raises(PackageError, match=r"CBF\.csv row 1 field CBFMC: the bytes .* not utf-8"):
        read_package(as_csv)


def test_bad_records_are_all_named_and_nothing_is_stored(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    bad = copy.deepcopy(package)
    bad.dk[0]["DKBM"] = "5106041012010100001"  # another county's code
    bad.dk[1]["DKBM"] = bad.dk[2]["DKBM"]  # twice in the layer
    bad.dk[3]["TDLYLX"] = "999"
    bad.tables["CBDKXX"][4]["DKBM"] = "5106031012010109999"  # a parcel the layer lacks
    bad.tables["CBF"][2]["CBFLX"] = "1"
    bad.tables["CBF"][2]["CBFBM"] = bad.tables["CBF"][2]["CBFBM"][:14] + "8500"  # outside 农户
    report = run(county, ledger, write(bad, tmp_path / "bad"))
    assert not report.stored and parcel_count(county) == 0
    named = {(r.table, r.record, r.field) for r in report.rejected}
    assert ("DK", 1, "DKBM") in named and ("DK", 4, "TDLYLX") in named
    assert ("CBF", 3, "CBFBM") in named and ("CBDKXX", 5, "DKBM") in named
    reasons = " | ".join(r.reason for r in report.rejected)
    assert "of county 510604, not 510603" in reasons
    assert "is also row 2 of the layer" in reasons or "is also row 3 of the layer" in reasons
    assert "outside 0001-8000 for 承包方类型 1 (农户)" in reasons
    assert "names no parcel of the DK layer" in reasons
    partial = import_package(
        database=county,
        ledger=ledger,
        package=read_package(tmp_path / "bad"),
        actor=Actor.operator(),
        partial=True,
        valid_from=DAY_ONE,
    )
    assert partial.stored and partial.rejected
    assert parcel_count(county) == partial.counts["parcels"]["created"] > 0


def test_dv_registry_import_json_contract(
    cli_env: Path, package: Generated, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    folder = write(package, tmp_path / "pkg", tables="csv")
    result = runner.invoke(app, ["registry", "import", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["parcels"]["created"] == 12 and answer["parcels"]["changed"] == 0
    assert answer["parcels"]["rejected"] == []
    assert answer["households"]["created"] == 6 and answer["contracts"]["created"] == 6
    zipped = tmp_path / "pkg.zip"
    from digital_village.registry.writer import zip_folder

    zip_folder(folder, zipped)
    again = runner.invoke(app, ["registry", "import", str(zipped), "--json"])
    assert again.exit_code == 0 and json.loads(again.output)["parcels"]["unchanged"] == 12
    bad = copy.deepcopy(package)
    bad.dk[0]["TDLYLX"] = "999"
    bad.dk[0]["DKBM"] = bad.dk[0]["DKBM"][:14] + "00077"
    result = runner.invoke(app, ["registry", "import", str(write(bad, tmp_path / "b")), "--json"])
    assert result.exit_code == 1
    rejected = json.loads(result.output)["parcels"]["rejected"]
    dk = [r for r in rejected if r["table"] == "DK"]
    assert dk == [
        {
            "table": "DK",
            "record": 1,
            "key": bad.dk[0]["DKBM"],
            "field": "TDLYLX",
            "reason": "TDLYLX '999' is no farm class of GB/T 21010",
        }
    ]
    assert [r["table"] for r in rejected if r not in dk] == ["CBDKXX"]  # its link goes too
    result = runner.invoke(app, ["registry", "import", str(tmp_path / "nothing-here")])
    assert result.exit_code == 2 and "no package at" in result.output


def test_a_parcel_far_from_its_village_is_refused_as_read_in_the_wrong_place(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    stray = copy.deepcopy(package)
    stray.shapes[5] = translate(stray.shapes[5], 40_000)  # a typo in the easting: 40 km east
    report = run(county, ledger, write(stray, tmp_path / "stray"))
    assert not report.stored and parcel_count(county) == 0
    (far,) = [r for r in report.rejected if r.table == "DK"]
    assert (far.record, far.key) == (6, package.dk[5]["DKBM"])
    assert re.search(
        r"lies (39|40) km from the other parcels of village 510603101201 in this "
        r"package",
        far.reason,
    )
    assert "really in EPSG:4544" in far.reason
    assert run(county, ledger, write(package, tmp_path / "good")).stored
    # A later package adds a parcel to the village; the registry now knows where it lies.
    later = copy.deepcopy(package)
    later.dk.append({**later.dk[0], "DKBM": later.dk[0]["DKBM"][:14] + "00900", "BSM": 900})
    later.shapes.append(translate(later.shapes[0], 0, -35_000))
    later.tables["CBDKXX"].append({**later.tables["CBDKXX"][0], "DKBM": later.dk[-1]["DKBM"]})
    report = run(county, ledger, write(later, tmp_path / "later"), partial=True)
    (far,) = [r for r in report.rejected if r.table == "DK"]
    assert far.key == later.dk[-1]["DKBM"]
    assert re.search(r"lies 3\d km from the other parcels of village 510603101201:", far.reason)
    assert parcel_count(county) == 12


def test_cbdkxx_rows_naming_unknown_households_or_contracts_are_named(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    bad = copy.deepcopy(package)
    links = bad.tables["CBDKXX"]
    links[0]["CBFBM"] = links[0]["CBFBM"][:14] + "0999"  # no such 承包方
    links[1]["CBHTBM"] = links[1]["CBHTBM"][:-1] + "X"  # no such contract
    report = run(county, ledger, write(bad, tmp_path / "bad"))
    assert not report.stored and parcel_count(county) == 0
    named = {(r.table, r.record, r.field): r.reason for r in report.rejected}
    assert named[("CBDKXX", 1, "CBFBM")] == (
        f"CBFBM {links[0]['CBFBM']} names no household of CBF (or one rejected)"
    )
    assert "names no contract of CBHT" in named[("CBDKXX", 2, "CBHTBM")]


def test_dv_registry_import_of_an_unreadable_package_exits_2_and_writes_nothing(
    cli_env: Path, package: Generated, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    no_prj = write(package, tmp_path / "no-prj", prj=False)
    result = runner.invoke(app, ["registry", "import", str(no_prj), "--json"])
    assert result.exit_code == 2
    assert "DK5106032016.shp has no .prj and no --crs was given" in result.output
    for name in ("DK5106032016.shp", "DK5106032016.shx", "DK5106032016.dbf"):
        (no_prj / name).unlink()
    result = runner.invoke(app, ["registry", "import", str(no_prj)])
    assert result.exit_code == 2 and "has no DK layer" in result.output
    shown = runner.invoke(app, ["parcels", "show", package.dk[0]["DKBM"]])
    assert shown.exit_code != 0 and "no parcel" in shown.output.lower()
