"""The ownership tables of a 确权 package (FBF, CBF, CBF_JTCY, CBHT, CBDKXX, CBJYQZ) as text.

.dbf and .csv are read here, decoded by this rule: a .cpg beside the file names the encoding;
without one, a table whose text is all valid UTF-8 is UTF-8, else it is GB18030 (the superset
of GBK, the usual encoding of Chinese GIS tables). Text that decodes in neither is an error
naming the file, the row and the field. An Excel .xlsx (one workbook per table, or one with a
sheet per table) is read with openpyxl; its cells are typed, so dates come out as YYYYMMDD and a
code that Excel keeps as a number (only 15 significant digits) is refused by row and field. An
Access .mdb is read with mdbtools' ``mdb-tables`` and ``mdb-export`` when they are installed.
Field names are upper-cased; values are stripped strings ("" = empty).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digital_village.registry import dbf

_CODE_PAGES = {
    "936": "gb18030",
    "cp936": "gb18030",
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "gb18030": "gb18030",
    "65001": "utf-8",
    "utf-8": "utf-8",
    "utf8": "utf-8",
}


class TableError(ValueError):
    """A table that cannot be read; ``str(error)`` names the file, row and field."""


@dataclass(frozen=True)
class Table:
    """Rows of one table: ``rows[i]`` is data row ``i + 1`` of ``source``."""

    name: str
    source: str
    columns: tuple[str, ...]
    rows: list[dict[str, str]]


def _declared(path: Path) -> str | None:
    for suffix in (".cpg", ".CPG"):
        sidecar = path.with_suffix(suffix)
        if sidecar.is_file():
            name = sidecar.read_text(encoding="ascii", errors="replace").strip().lower()
            if name not in _CODE_PAGES:
                raise TableError(f"{sidecar.name} names encoding {name!r}: expected GBK or UTF-8")
            return _CODE_PAGES[name]
    return None


def _choose(values: list[bytes], declared: str | None) -> str:
    if declared is not None:
        return declared
    try:
        for value in values:
            value.decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def _decodes(value: bytes, encoding: str) -> bool:
    try:
        value.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def read_dbf(path: Path, name: str) -> Table:
    """A .dbf table decoded by the rule above."""
    try:
        raw = dbf.read_raw(path)
    except dbf.DbfError as error:
        raise TableError(str(error)) from None
    columns = tuple(f.name.upper() for f in raw.fields)
    if not raw.rows:
        return Table(name, path.name, columns, [])
    stripped = [[v.strip(b" \0") for v in column] for column in zip(*raw.rows, strict=True)]
    text = [i for i, f in enumerate(raw.fields) if f.kind in "CM"]
    non_ascii = [v for i in text for v in stripped[i] if not v.isascii()]
    encoding = _choose(non_ascii, _declared(path))
    decoded: list[list[str]] = []
    for column, values in zip(columns, stripped, strict=True):
        try:
            decoded.append([value.decode(encoding) for value in values])
        except UnicodeDecodeError:
            number, value = next(
                (n, v) for n, v in enumerate(values, start=1) if not _decodes(v, encoding)
            )
            raise TableError(
                f"{path.name} row {number} field {column}: the bytes {value[:12].hex(' ')} "
                f"are not {encoding} text; save the table as GBK or UTF-8 (with a .cpg)"
            ) from None
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*decoded, strict=True)]
    return Table(name, path.name, columns, rows)


def _csv_column(data: bytes, offset: int) -> str:
    """The CSV field holding byte ``offset`` as ' field NAME' ('' when the header is not
    plain ASCII): its place in the line, counting the commas outside quotes before it (commas
    and quotes are ASCII, so this holds whatever the text's encoding)."""
    start = data.rfind(b"\n", 0, offset) + 1
    index, quoted = 0, False
    for byte in data[start:offset]:
        if byte == 0x22:  # "
            quoted = not quoted
        elif byte == 0x2C and not quoted:  # ,
            index += 1
    header = data[: data.find(b"\n")] if b"\n" in data else data
    try:
        names = next(csv.reader([header.decode("ascii").strip()]))
    except (UnicodeDecodeError, StopIteration):
        return ""
    return f" field {names[index].strip().upper()}" if index < len(names) else ""


def read_csv(path: Path, name: str) -> Table:
    """A .csv table (first line: field names) decoded by the rule above."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data, encoding = data[3:], "utf-8"
    else:
        encoding = _choose([data], _declared(path))
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n")  # the header is line 0, data row 1 line 1
        column = _csv_column(data, error.start)
        raise TableError(
            f"{path.name} row {line}{column}: the bytes "
            f"{data[error.start : error.start + 6].hex(' ')} are not {encoding} text; save the "
            "table as GBK or UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise TableError(f"{path.name} is empty: the first line must name the fields")
    columns = tuple(h.strip().upper() for h in header)
    rows = []
    for number, values in enumerate(reader, start=1):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(columns):
            raise TableError(
                f"{path.name} row {number}: {len(values)} values for {len(columns)} fields"
            )
        rows.append({c: v.strip() for c, v in zip(columns, values, strict=True)})
    return Table(name, path.name, columns, rows)


# Fields holding codes (GB/T 35958 and NY/T 2539): a number cell there has lost digits or zeros.
_CODE_FIELDS = frozenset({"FBFBM", "CBFBM", "DKBM", "CBHTBM", "CBJYQZBM", "CBFZJHM", "CYZJHM"})
_EXACT_DIGITS = 15  # what an Excel number (an IEEE double, as Excel shows it) keeps


def _cell_text(value: Any, column: str, where: str) -> str:
    """A typed .xlsx cell as the text a .dbf or .csv would hold."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, bool):
        return "1" if value else "2"  # NY/T 2539's 是/否 codes
    if isinstance(value, int | float):
        if column in _CODE_FIELDS:
            digits = len(str(int(value))) if float(value).is_integer() else 99
            if digits > _EXACT_DIGITS or not float(value).is_integer():
                raise TableError(
                    f"{where} field {column}: the code is stored as the number {value!r}, and "
                    f"Excel keeps only {_EXACT_DIGITS} digits of a number; format the column "
                    "as text and enter the codes again"
                )
            return str(int(value))
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return repr(value) if isinstance(value, float) else str(value)
    return str(value).strip()


def _sheet_table(sheet: Any, name: str, source: str) -> Table:
    rows_in = sheet.iter_rows(values_only=True)
    header = next(rows_in, None)
    if not header or not any(h is not None and str(h).strip() for h in header):
        raise TableError(f"{source} is empty: its first row must name the fields")
    columns = tuple("" if h is None else str(h).strip().upper() for h in header)
    rows = []
    for number, values in enumerate(rows_in, start=1):
        if not any(v is not None and str(v).strip() for v in values):
            continue
        if any(v is not None and str(v).strip() for v in values[len(columns) :]):
            raise TableError(f"{source} row {number}: a value beyond its {len(columns)} fields")
        row = {}
        for column, value in zip(columns, values, strict=False):
            if column:
                row[column] = _cell_text(value, column, f"{source} row {number}")
        rows.append({c: row.get(c, "") for c in columns if c})
    return Table(name, source, tuple(c for c in columns if c), rows)


def read_xlsx(path: Path, names: list[str]) -> dict[str, Table]:
    """The named tables of an Excel workbook: a sheet named after a table, or the first sheet
    when the file itself is named after one (``CBF.xlsx``)."""
    from openpyxl import load_workbook  # imported when a package holds a workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises zip, XML and its own errors: one message
        raise TableError(f"{path.name} is not a readable .xlsx workbook: {error}") from None
    try:
        sheets = {sheet.title.strip().upper(): sheet for sheet in workbook.worksheets}
        stem = path.stem.upper()
        tables = {}
        for name in names:
            sheet = sheets.get(name)
            if sheet is None and stem == name and workbook.worksheets:
                sheet = workbook.worksheets[0]
            if sheet is not None:
                source = f"{path.name}:{sheet.title}" if stem != name else path.name
                tables[name] = _sheet_table(sheet, name, source)
        return tables
    finally:
        workbook.close()


def read_mdb(path: Path, names: list[str]) -> dict[str, Table]:
    """The named tables of an Access .mdb, through mdbtools' ``mdb-tables`` and ``mdb-export``.

    mdb-export prints CSV in UTF-8; dates are asked for as YYYYMMDD. Access 97 (Jet 3) files
    keep text in the code page of the PC that wrote them, which for a county office is GBK:
    mdbtools converts from ``MDB_JET3_CHARSET``, set to GB18030 unless the caller set it.
    """
    export = shutil.which("mdb-export")
    listing = shutil.which("mdb-tables")
    if export is None or listing is None:
        raise TableError(
            f"{path.name}: reading an Access .mdb needs mdbtools (apt-get install mdbtools); "
            "or export its tables as .dbf, .csv or .xlsx into the package"
        )
    environment = {**os.environ, "MDB_JET3_CHARSET": os.environ.get("MDB_JET3_CHARSET", "GB18030")}
    found = subprocess.run(  # noqa: S603 - fixed program, the path is an argument
        [listing, "-1", str(path)], capture_output=True, check=False, env=environment
    )
    if found.returncode != 0:
        problem = found.stderr.decode(errors="replace").strip() or f"exit {found.returncode}"
        raise TableError(f"{path.name}: mdb-tables cannot read it as an Access database: {problem}")
    listed = found.stdout.decode("utf-8", errors="replace").splitlines()
    present = {line.strip().upper(): line.strip() for line in listed if line.strip()}
    tables = {}
    for name in names:
        if name not in present:
            continue
        result = subprocess.run(  # noqa: S603
            [export, "-D", "%Y%m%d", "-T", "%Y%m%d", str(path), present[name]],
            capture_output=True,
            check=False,
            env=environment,
        )
        if result.returncode != 0:
            problem = result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}"
            raise TableError(f"{path.name} table {present[name]}: mdb-export failed: {problem}")
        with tempfile.TemporaryDirectory(prefix="dv-mdb-") as scratch:
            exported = Path(scratch) / f"{name}.csv"
            exported.write_bytes(result.stdout)
            exported.with_suffix(".cpg").write_text("UTF-8", encoding="ascii")
            try:
                read = read_csv(exported, name)
            except TableError as error:  # name the database and its table, not our scratch file
                raise TableError(
                    str(error).replace(exported.name, f"{path.name} table {present[name]}")
                ) from None
        tables[name] = Table(name, f"{path.name}:{present[name]}", read.columns, read.rows)
    return tables
