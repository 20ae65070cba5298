"""Reading a 确权 exchange package (a folder or a .zip): the DK layer and the ownership tables.

The DK layer is the Shapefile whose name starts with DK (``DK.shp``, ``DK5106032016.shp``);
its attributes come through ``tables`` (so GBK text without a .cpg reads right), its shapes
through pyogrio as WKB. Coordinates must be CGCS2000 3° Gauss-Krüger, as NY/T 2539 asks: the
.prj (or ``--crs``) names the zone, eastings may carry the zone number in front; a 6° zone, a
layer mixing zones, or shapes outside the named zone are refused before anything is stored.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from digital_village.errors import Invalid
from digital_village.parcels import geometry
from digital_village.registry import nyt2539
from digital_village.registry.tables import (
    Table,
    TableError,
    read_csv,
    read_dbf,
    read_mdb,
    read_xlsx,
)

_DK_NAME = re.compile(r"^DK(\d.*)?$", re.IGNORECASE)
_SIX_DEGREE = range(4491, 4513)  # CGCS2000 / Gauss-Kruger zone 13..23 and CM 75E..135E
_THREE_DEGREE_PREFIXED = range(4513, 4534)  # zone 25..45, eastings with the zone number
_THREE_DEGREE = range(4534, 4555)  # CM 75E..135E
_ZONE_MARGIN_DEG = 1.6  # half a 3° zone and a little: fields just across the edge are fine


class PackageError(Invalid):
    """The package as a whole cannot be read: no DK layer, no CRS, a wrong zone, a bad table."""


@dataclass(frozen=True)
class DkFeature:
    """One feature of the DK layer: its row (1-based), attributes, and shape as read."""

    row: int
    record: dict[str, str]
    wkb: bytes | None
    source_sha256: str


@dataclass
class Package:
    """What was read, before any check against the registry."""

    name: str
    sha256: str
    dk_source: str
    crs: str
    crs_note: str | None
    features: list[DkFeature]
    tables: dict[str, Table] = field(default_factory=dict)


@contextmanager
def _opened(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield path
        return
    if path.suffix.lower() != ".zip" or not path.is_file():
        raise PackageError(f"{path}: a package is a folder or a .zip file")
    with tempfile.TemporaryDirectory(prefix="dv-package-") as scratch:
        try:
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    target = (Path(scratch) / member.filename).resolve()
                    if not target.is_relative_to(Path(scratch).resolve()):
                        raise PackageError(f"{path.name}: {member.filename} points outside it")
                archive.extractall(scratch)
        except zipfile.BadZipFile as error:
            raise PackageError(f"{path.name} is not a readable .zip: {error}") from None
        yield Path(scratch)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _digest(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _find_dk(files: list[Path], name: str) -> Path:
    found = [p for p in files if p.suffix.lower() == ".shp" and _DK_NAME.match(p.stem)]
    if not found:
        raise PackageError(f"{name} has no DK layer (a DK*.shp Shapefile of the 承包地块)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise PackageError(f"{name} has more than one DK layer ({names}); keep one")
    shp = found[0]
    for ext in (".shx", ".dbf"):
        if not any(shp.with_suffix(e).is_file() for e in (ext, ext.upper())):
            raise PackageError(f"{shp.name}: its {ext} beside it is missing")
    return shp


def _read_tables(files: list[Path]) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    for path in files:
        stem, suffix = path.stem.upper(), path.suffix.lower()
        if stem in nyt2539.TABLES and suffix in (".dbf", ".csv") and stem not in tables:
            reader = read_dbf if suffix == ".dbf" else read_csv
            tables[stem] = reader(path, stem)
    # Workbooks and databases fill in the tables no .dbf or .csv gave; "~$" names are the lock
    # files Excel leaves beside an open workbook.
    for path in files:
        missing = [name for name in nyt2539.TABLES if name not in tables]
        suffix = path.suffix.lower()
        if missing and suffix == ".xlsx" and not path.name.startswith("~$"):
            tables.update(read_xlsx(path, missing))
        elif missing and suffix in (".mdb", ".accdb"):
            tables.update(read_mdb(path, missing))
    return tables


def _gk_of(crs: Any) -> tuple[int | None, float | None]:
    """(EPSG code, central meridian) of a Gauss-Krüger/transverse Mercator CRS."""
    epsg = crs.to_epsg(min_confidence=70)
    central = None
    operation = crs.coordinate_operation
    for param in operation.params if operation is not None else ():
        if "longitude of natural origin" in param.name.lower() or "central" in param.name.lower():
            central = float(param.value)
    return epsg, central


def decide_crs(
    declared: str, eastings: np.ndarray[Any, Any], source: str
) -> tuple[str, str | None]:
    """The CRS to read the layer in, and a note when eastings carry a zone number the .prj
    lacks; PackageError for a 6° zone, mixed zones, or a zone the .prj contradicts."""
    crs = geometry.crs_of(declared)
    if not crs.is_projected:
        return declared, None
    epsg, central = _gk_of(crs)
    if epsg in _SIX_DEGREE:
        raise PackageError(
            f"{source}: its CRS is a 6° zone ({crs.name}); NY/T 2539 packages use 3° zones. "
            "If the coordinates really are in a 3° zone, give it with --crs EPSG:45NN"
        )
    finite = eastings[np.isfinite(eastings)]
    zones = np.unique(np.floor(finite / 1_000_000).astype(int)) if len(finite) else np.array([])
    if len(zones) > 1:
        listed = ", ".join(str(z) for z in zones)
        raise PackageError(f"{source}: the layer mixes zones (eastings begin with {listed})")
    if len(zones) == 0 or zones[0] == 0:
        return declared, None
    zone = int(zones[0])
    if 13 <= zone <= 23:
        raise PackageError(
            f"{source}: eastings begin with {zone}, a 6° zone number; NY/T 2539 packages use 3° "
            f"zones (numbers 25-45): the data is in another zone than its .prj says ({crs.name})"
        )
    if not 25 <= zone <= 45:
        raise PackageError(f"{source}: eastings of {zone} million metres fit no GK zone")
    if epsg is not None and epsg in _THREE_DEGREE_PREFIXED:
        if epsg - 4513 + 25 != zone:
            raise PackageError(
                f"{source}: eastings carry zone {zone} but the .prj names {crs.name}"
            )
        return declared, None
    if central is not None and abs(central - 3 * zone) > 1e-6:
        raise PackageError(
            f"{source}: eastings carry zone {zone} (central meridian {3 * zone}°E) but the CRS "
            f"is {crs.name} (central meridian {central:g}°E)"
        )
    prefixed = 4513 + zone - 25
    return f"EPSG:{prefixed}", f"eastings carry zone number {zone}: read as EPSG:{prefixed}"


def _check_in_zone(geoms: np.ndarray[Any, Any], crs: str, source: str) -> None:
    """Every shape within (about) the 3° zone its CRS names: else it was read in another."""
    epsg, central = _gk_of(geometry.crs_of(crs))
    if central is None or not (epsg in _THREE_DEGREE or epsg in _THREE_DEGREE_PREFIXED):
        return
    present = geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)]
    if not len(present):
        return
    try:
        centres = geometry.to_lonlat(shapely.centroid(present), crs)
    except geometry.GeometryError as error:
        raise PackageError(f"{source}: {error}") from None
    lons = shapely.get_x(centres)
    outside = np.abs(lons - central) > _ZONE_MARGIN_DEG
    if outside.any():
        worst = float(lons[np.argmax(np.abs(lons - central))])
        raise PackageError(
            f"{source}: {int(outside.sum())} shapes lie outside the 3° zone of central meridian "
            f"{central:g}°E that the CRS names (one at {worst:.2f}°E): is it a 6° zone, or "
            "another zone, read as this one? Give the right one with --crs"
        )


def _read_dk(shp: Path, given_crs: str | None) -> tuple[list[DkFeature], str, str | None]:
    import pyogrio.raw

    attributes = read_dbf(shp.with_suffix(".dbf"), "DK")
    try:
        meta, _, wkbs, _ = pyogrio.raw.read(shp, columns=[])
    except Exception as error:  # pyogrio raises several DataSource errors: one message
        raise PackageError(f"cannot read {shp.name}: {error}") from error
    if len(wkbs) != len(attributes.rows):
        raise PackageError(f"{shp.name}: {len(wkbs)} shapes but {len(attributes.rows)} rows")
    declared = given_crs or meta.get("crs")
    if not declared:
        raise PackageError(
            f"{shp.name} has no .prj and no --crs was given: name its CRS, e.g. --crs EPSG:4544"
        )
    geoms = shapely.from_wkb(np.asarray(wkbs, dtype=object), on_invalid="ignore")
    eastings = shapely.get_coordinates(geoms)[:, 0] if len(geoms) else np.array([])
    crs, note = decide_crs(str(declared), eastings, shp.name)
    _check_in_zone(geoms, crs, shp.name)
    features = []
    for row, (record, wkb) in enumerate(zip(attributes.rows, wkbs, strict=True), start=1):
        digest = hashlib.sha256((wkb or b"") + repr(sorted(record.items())).encode())
        features.append(DkFeature(row, record, wkb, digest.hexdigest()))
    return features, crs, note


def read_package(path: Path, *, crs: str | None = None) -> Package:
    """Read a package; PackageError (or TableError) when it cannot be read as a whole."""
    if not path.exists():
        raise PackageError(f"no package at {path}")
    with _opened(path) as root:
        files = _files(root)
        shp = _find_dk(files, path.name)
        try:
            features, decided, note = _read_dk(shp, crs)
            tables = _read_tables(files)
        except TableError as error:
            raise PackageError(str(error)) from None
        return Package(path.name, _digest(root, files), shp.name, decided, note, features, tables)
