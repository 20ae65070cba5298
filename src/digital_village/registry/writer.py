"""Writing a 确权 exchange package: the DK layer as a Shapefile with its NY/T 2539 fields, .prj
and .cpg, and the ownership tables as .dbf (and .csv). Used by the export and by the tests'
package generator, so what we write is what we read.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digital_village.registry import dbf, nyt2539

Row = Mapping[str, Any]


def _values(fields: Sequence[dbf.Field], row: Row) -> list[object]:
    out: list[object] = []
    for column in fields:
        value = row.get(column.name)
        if column.kind == "D" and isinstance(value, str) and value:
            value = nyt2539.parse_date(value)
        elif column.kind in "NF" and isinstance(value, str):
            value = float(value) if value else None
        out.append(value)
    return out


def write_table(
    path: Path, name: str, rows: Sequence[Row], *, encoding: str = "gbk", cpg: bool = True
) -> None:
    """One ownership table as .dbf (by its suffix) or .csv, in NY/T 2539's field order."""
    fields = nyt2539.TABLE_FIELDS[name]
    if path.suffix.lower() == ".csv":
        with path.open("w", encoding=encoding, newline="") as out:
            writer = csv.writer(out)
            writer.writerow([f.name for f in fields])
            for row in rows:
                writer.writerow(
                    [
                        "" if v is None else _csv_text(v, f)
                        for v, f in zip(_values(fields, row), fields, strict=True)
                    ]
                )
    else:
        dbf.write(path, fields, [_values(fields, row) for row in rows], encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)


def _csv_text(value: object, column: dbf.Field) -> str:
    if column.kind == "D" and hasattr(value, "strftime"):
        return value.strftime("%Y%m%d")  # type: ignore[no-any-return]
    if column.kind in "NF" and isinstance(value, float):
        return f"{value:.{column.decimals}f}" if column.decimals else str(int(value))
    return str(value)


def write_dk(
    path: Path,
    rows: Sequence[Row],
    shapes: Sequence[Any],
    *,
    crs: str,
    encoding: str = "gbk",
    cpg: bool = True,
    prj: bool = True,
) -> None:
    """The DK layer: shapes (already in ``crs``) through pyogrio, attributes as our own .dbf."""
    import geopandas as gpd
    import pyogrio

    frame = gpd.GeoDataFrame({"BSM": np.arange(1, len(shapes) + 1)}, geometry=list(shapes), crs=crs)
    pyogrio.write_dataframe(frame, path, driver="ESRI Shapefile")
    fields = nyt2539.DK_FIELDS
    dbf.write(
        path.with_suffix(".dbf"), fields, [_values(fields, row) for row in rows], encoding=encoding
    )
    if not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)
    if not prj:
        path.with_suffix(".prj").unlink(missing_ok=True)


def zip_folder(folder: Path, target: Path) -> None:
    """A .zip of a package folder (files at its top level)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
