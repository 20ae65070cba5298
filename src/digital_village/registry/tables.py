"""The ownership tables of a 确权 package (FBF, CBF, CBF_JTCY, CBHT, CBDKXX, CBJYQZ) as text.

.dbf and .csv are read here, decoded by this rule: a .cpg beside the file names the encoding;
without one, a table whose text is all valid UTF-8 is UTF-8, else it is GB18030 (the superset
of GBK, the usual encoding of Chinese GIS tables). Text that decodes in neither is an error
naming the file, the row and the field. An Access .mdb is read with mdbtools' ``mdb-export``
when it is installed. Field names are upper-cased; values are stripped strings ("" = empty).
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
        raise TableError(
            f"{path.name} row {line}: the bytes {data[error.start : error.start + 6].hex(' ')} "
            f"are not {encoding} text; save the table as GBK or UTF-8"
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


def read_mdb(path: Path, names: list[str]) -> dict[str, Table]:
    """The named tables of an Access .mdb, through mdbtools' ``mdb-export`` (UTF-8 CSV)."""
    export = shutil.which("mdb-export")
    listing = shutil.which("mdb-tables")
    if export is None or listing is None:
        raise TableError(
            f"{path.name}: reading an Access .mdb needs mdbtools (apt-get install mdbtools); "
            "or export its tables as .dbf or .csv into the package"
        )
    found = subprocess.run(  # noqa: S603 - fixed program, the path is an argument
        [listing, "-1", str(path)], capture_output=True, check=False, text=True
    )
    if found.returncode != 0:
        raise TableError(f"{path.name}: mdb-tables cannot read it: {found.stderr.strip()}")
    present = {line.strip().upper(): line.strip() for line in found.stdout.splitlines()}
    tables = {}
    for name in names:
        if name not in present:
            continue
        result = subprocess.run(  # noqa: S603
            [export, "-D", "%Y%m%d", str(path), present[name]], capture_output=True, check=False
        )
        if result.returncode != 0:
            raise TableError(f"{path.name} table {name}: {result.stderr.decode(errors='replace')}")
        with tempfile.TemporaryDirectory(prefix="dv-mdb-") as scratch:
            exported = Path(scratch) / f"{name}.csv"
            exported.write_bytes(result.stdout)
            read = read_csv(exported, name)
        tables[name] = Table(name, f"{path.name}:{name}", read.columns, read.rows)
    return tables
