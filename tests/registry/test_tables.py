"""Ownership tables from Excel workbooks and Access databases, as county offices keep them."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.regions.models import Household
from digital_village.registry import nyt2539
from digital_village.registry.models import LandContract
from digital_village.registry.package import PackageError, read_package
from tests.conftest import IN_CI
from tests.registry.factory import Generated, Spec, generate, write, write_workbook
from tests.registry.test_import import county, ledger, run

__all__ = ["county", "ledger"]  # fixtures shared with test_import


@pytest.fixture(scope="module")
def package() -> Generated:
    return generate(Spec(villages=1, groups=2, households=3, parcels=2))


def _only_dk(package: Generated, folder: Path) -> Path:
    """A package folder holding the DK layer and no ownership tables yet."""
    write(package, folder)
    for name in nyt2539.TABLES:
        for suffix in (".dbf", ".cpg"):
            (folder / f"{name}{suffix}").unlink(missing_ok=True)
    return folder


def test_a_package_with_an_excel_workbook_imports_its_households_and_contracts(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    folder = write(package, tmp_path / "pkg", tables="xlsx")
    assert not list(folder.glob("CBF.*")) and (folder / "确权成果.xlsx").is_file()
    report = run(county, ledger, folder)
    assert report.stored and report.rejected == []
    counts = report.as_dict()
    assert counts["parcels"]["created"] == 12 and counts["households"]["created"] == 6
    assert counts["contracts"]["created"] == 6
    cbf, cbht = package.tables["CBF"][0], package.tables["CBHT"][0]
    with county.transaction(write=False) as session:
        household = session.scalar(select(Household).where(Household.cbfbm == cbf["CBFBM"]))
        assert household is not None
        assert (household.name, household.id_number) == (cbf["CBFMC"], cbf["CBFZJHM"])
        contract = session.scalar(select(LandContract).where(LandContract.cbhtbm == cbht["CBHTBM"]))
        assert contract is not None
        # typed date cells come out as the dates the clerk entered
        assert (contract.period_from, contract.period_to) == (
            dt.date(1998, 10, 1),
            dt.date(2028, 9, 30),
        )
        assert contract.area_m2 == pytest.approx(cbht["HTZMJ"])


def test_a_workbook_per_table_and_the_first_sheet_of_each(
    package: Generated, tmp_path: Path
) -> None:
    folder = _only_dk(package, tmp_path / "pkg")
    for name in nyt2539.TABLES:
        write_workbook(package, folder / f"{name.lower()}.xlsx", names=(name,))
        book = load_workbook(folder / f"{name.lower()}.xlsx")
        book.active.title = "Sheet1"  # the sheet keeps Excel's default name
        book.save(folder / f"{name.lower()}.xlsx")
    (folder / "~$cbf.xlsx").write_bytes(b"lock file of an open workbook")
    read = read_package(folder)
    assert set(read.tables) == set(nyt2539.TABLES)
    assert read.tables["CBF"].source == "cbf.xlsx"
    first = read.tables["CBF"].rows[0]
    assert first["CBFMC"] == package.tables["CBF"][0]["CBFMC"]
    assert first["CBFDCRQ"] == "20160320" and first["CBFCYSL"] == str(
        package.tables["CBF"][0]["CBFCYSL"]
    )


def test_a_code_excel_kept_as_a_number_is_refused_by_row_and_field(
    package: Generated, tmp_path: Path
) -> None:
    folder = write(package, tmp_path / "pkg", tables="xlsx")
    book = load_workbook(folder / "确权成果.xlsx")
    sheet = book["CBF"]
    sheet.cell(row=3, column=1).value = float(package.tables["CBF"][1]["CBFBM"])  # 18 digits
    book.save(folder / "确权成果.xlsx")
    with pytest.raises(
        PackageError,
        match=r"确权成果\.xlsx:CBF row 2 field CBFBM: the code is stored as the number .* "
        r"only 15 digits",
    ):
        read_package(folder)
    (folder / "确权成果.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(PackageError, match=r"确权成果\.xlsx is not a readable \.xlsx workbook"):
        read_package(folder)


# --- Access databases through mdbtools ---------------------------------------------------------
# No program on PyPI or Debian writes an Access .mdb, so the adapter is tested against the
# output mdb-tables and mdb-export print (header unquoted, text quoted, dates in the format
# asked for), from stand-ins on PATH; the real mdbtools is run on a file that is no database.


def _mdb_export_csv(rows: list[dict[str, object]], name: str) -> str:
    fields = nyt2539.TABLE_FIELDS[name]
    lines = [",".join(f.name for f in fields)]
    for row in rows:
        cells = []
        for column in fields:
            value = row.get(column.name)
            if value in (None, ""):
                cells.append("")
            elif column.kind in "NF":
                cells.append(str(value))
            elif column.kind == "D":
                cells.append(nyt2539.parse_date(str(value)).strftime("%Y%m%d"))
            else:
                cells.append('"' + str(value).replace('"', '""') + '"')
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _stand_ins(tmp_path: Path, package: Generated) -> Path:
    """mdb-tables and mdb-export that answer from prepared output, logging their calls."""
    bin_dir = tmp_path / "bin"
    out = tmp_path / "mdb-output"
    bin_dir.mkdir()
    out.mkdir()
    names = [*package.tables, "MSysObjects_not_ours"]
    (out / "tables.txt").write_text("\n".join(n.lower() for n in names) + "\n")
    for name, rows in package.tables.items():
        (out / f"{name.lower()}.csv").write_text(_mdb_export_csv(rows, name), encoding="utf-8")
    log = tmp_path / "calls.log"
    (bin_dir / "mdb-tables").write_text(
        f'#!/bin/sh\necho "mdb-tables $* $MDB_JET3_CHARSET" >> {log}\ncat {out}/tables.txt\n'
    )
    (bin_dir / "mdb-export").write_text(
        f'#!/bin/sh\necho "mdb-export $*" >> {log}\n'
        "for last; do :; done\n"
        f'[ -f {out}/"$last".csv ] || {{ echo "table $last not found" >&2; exit 1; }}\n'
        f'cat {out}/"$last".csv\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_tables_of_an_access_database_are_read_through_mdbtools(
    county: Database,
    ledger: Ledger,
    package: Generated,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = _only_dk(package, tmp_path / "pkg")
    (folder / "510603确权.mdb").write_bytes(b"\0\1\0\0Standard Jet DB\0")
    monkeypatch.setenv("PATH", f"{_stand_ins(tmp_path, package)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("MDB_JET3_CHARSET", raising=False)
    read = read_package(folder)
    assert set(read.tables) == set(nyt2539.TABLES)
    assert read.tables["CBF"].source == "510603确权.mdb:cbf"
    assert read.tables["CBF"].rows[0]["CBFMC"] == package.tables["CBF"][0]["CBFMC"]
    calls = (tmp_path / "calls.log").read_text()
    assert "mdb-tables -1" in calls and calls.split("\n")[0].endswith("GB18030")
    assert "mdb-export -D %Y%m%d -T %Y%m%d" in calls
    report = run(county, ledger, folder)
    assert report.stored and report.rejected == []
    assert report.counts["households"]["created"] == 6
    assert report.counts["contracts"]["created"] == 6


def test_an_access_table_that_does_not_export_is_named(
    package: Generated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _only_dk(package, tmp_path / "pkg")
    (folder / "确权.mdb").write_bytes(b"\0")
    bin_dir = _stand_ins(tmp_path, package)
    (tmp_path / "mdb-output" / "cbht.csv").unlink()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PackageError, match=r"确权\.mdb table cbht: mdb-export failed: table cbht"):
        read_package(folder)
    (tmp_path / "mdb-output" / "cbht.csv").write_bytes(b'CBHTBM,CBFBM\n"\xff\xfe"\n')
    with pytest.raises(
        PackageError, match=r"确权\.mdb table cbht row 1 field CBHTBM: the bytes ff fe"
    ):
        read_package(folder)


def test_a_file_that_is_no_access_database_is_named_by_mdbtools(
    package: Generated, tmp_path: Path
) -> None:
    if shutil.which("mdb-tables") is None:
        if IN_CI:
            pytest.fail("mdb-tables is missing: CI must install Debian's mdbtools")
        pytest.skip("mdbtools not installed (Debian: apt-get install mdbtools)")
    folder = _only_dk(package, tmp_path / "pkg")
    (folder / "CBF.mdb").write_bytes(b"this is a spreadsheet saved under the wrong name\n" * 40)
    with pytest.raises(PackageError, match=r"CBF\.mdb: mdb-tables cannot read it"):
        read_package(folder)
