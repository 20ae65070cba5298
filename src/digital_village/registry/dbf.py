"""dBASE III tables (.dbf) read and written byte for byte, so text encodings stay in our hands.

The county's 确权 tables are .dbf files in GBK/GB18030, often without a .cpg beside them. Each
field is decoded here, so an undecodable one is reported with its row and field, and numbers
and dates are parsed with the same care. Pure standard library.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct("<BBBBIHH20x")
_FIELD = struct.Struct("<11sc4xBB14x")


class DbfError(ValueError):
    """A .dbf that cannot be read: ``str(error)`` names the file, and the row and field."""


@dataclass(frozen=True)
class Field:
    """A column: name, dBASE type (C text, N number, D date, F float, L logical), width."""

    name: str
    kind: str
    width: int
    decimals: int = 0


@dataclass(frozen=True)
class RawTable:
    """A table's columns and its rows as raw field bytes (padding kept), in file order."""

    path: Path
    fields: tuple[Field, ...]
    rows: list[tuple[bytes, ...]]


def read_raw(path: Path) -> RawTable:
    """Every live (not deleted) row of a .dbf, fields still as bytes."""
    data = path.read_bytes()
    if len(data) < 32:
        raise DbfError(f"{path.name}: not a dBASE table (only {len(data)} bytes)")
    _, _, _, _, count, header_size, record_size = _HEADER.unpack_from(data, 0)
    fields: list[Field] = []
    offset = 32
    while offset < header_size - 1 and data[offset] != 0x0D:
        name, kind, width, decimals = _FIELD.unpack_from(data, offset)
        fields.append(
            Field(name.split(b"\0")[0].decode("ascii").strip(), kind.decode(), width, decimals)
        )
        offset += 32
    if sum(f.width for f in fields) + 1 != record_size:
        raise DbfError(f"{path.name}: the header's record size does not match its fields")
    layout = struct.Struct("1s" + "".join(f"{column.width}s" for column in fields))
    body = data[header_size : header_size + count * record_size]
    if len(body) < count * record_size:
        cut = len(body) // record_size + 1
        raise DbfError(f"{path.name}: row {cut} is cut short (the file is truncated)")
    # The deletion flag comes first: '*' marks a deleted row.
    rows = [record[1:] for record in layout.iter_unpack(body) if record[0] != b"*"]
    return RawTable(path, tuple(fields), rows)


def _field_bytes(value: object, column: Field, encoding: str) -> bytes:
    if value is None or value == "":
        return b" " * column.width
    if column.kind == "D":
        assert isinstance(value, dt.date)
        text = value.strftime("%Y%m%d").encode()
    elif column.kind in "NF":
        assert isinstance(value, int | float)
        number = f"{value:.{column.decimals}f}" if column.decimals else str(int(value))
        text = number.encode().rjust(column.width)
    elif column.kind == "L":
        text = b"T" if value else b"F"
    else:
        text = str(value).encode(encoding)
    if len(text) > column.width:
        raise DbfError(f"{column.name}: {value!r} is wider than {column.width} bytes")
    return text.ljust(column.width)


def write(
    path: Path,
    fields: Sequence[Field],
    rows: Iterator[Sequence[object]] | Sequence[Sequence[object]],
    *,
    encoding: str = "gbk",
) -> None:
    """Write a dBASE III table (and a .cpg naming the encoding, as GIS software expects)."""
    rows = list(rows)
    record_size = 1 + sum(f.width for f in fields)
    header_size = 32 + 32 * len(fields) + 1
    today = dt.date.today()
    # Language driver 0x4D is GBK (code page 936); ArcGIS and GDAL read it without a .cpg.
    language = 0x4D if encoding.lower() in ("gbk", "gb18030", "cp936") else 0x57
    out = bytearray(
        struct.pack(
            "<BBBBIHH17xB2x",
            0x03,
            today.year - 1900,
            today.month,
            today.day,
            len(rows),
            header_size,
            record_size,
            language,
        )
    )
    for column in fields:
        name = column.name.encode("ascii")[:10].ljust(11, b"\0")
        out += _FIELD.pack(name, column.kind.encode(), column.width, column.decimals)
    out += b"\r"
    for row in rows:
        out += b" "
        for value, column in zip(row, fields, strict=True):
            out += _field_bytes(value, column, encoding)
    out += b"\x1a"
    path.write_bytes(bytes(out))
    path.with_suffix(".cpg").write_text(encoding.upper(), encoding="ascii")
