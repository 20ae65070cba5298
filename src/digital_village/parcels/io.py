"""GIS files in and out: GeoJSON, GeoPackage and Shapefile through geopandas/pyogrio.

geopandas and pyogrio are imported only when a file is read, so the API and the rest of the
CLI start without them. Reading turns a file into ``ParcelIn`` items (geometry + attributes
named as in NY/T 2539 or plainly); ``import_features`` checks them all without locking
anything, then stores the good ones in short write transactions (or all in one, or none, with
``all_or_nothing``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape as shape_from_geojson
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.bulk import write_in_chunks
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import Invalid, PayloadTooLarge
from digital_village.ledger.log import Ledger
from digital_village.parcels import geometry, landuse, registry
from digital_village.parcels import service as parcels
from digital_village.regions.models import Cooperative, Household

SUPPORTED = (".geojson", ".json", ".gpkg", ".shp", ".zip")

# Attribute names: our own first, then the NY/T 2539 field names of 承包地块 layers.
_LAND_USE_KEYS = ("land_use", "DLBM", "dlbm")
_FBFBM_KEYS = ("fbfbm", "FBFBM")
_NAME_KEYS = ("name", "DKMC", "dkmc")
_BDCDYH_KEYS = ("bdcdyh", "BDCDYH")
_CBFBM_KEYS = ("cbfbm", "CBFBM")
_OPERATOR_KEYS = ("operator_uscc", "JYFTYSHXYDM")
_DKBM_KEYS = ("dkbm", "DKBM")


@dataclass(frozen=True)
class SourceFile:
    """Features read from a file: geometry (None when missing) and properties, in file order."""

    filename: str
    sha256: str
    crs: str | None
    geometries: list[Any]
    properties: list[dict[str, Any]]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (of the .shp and its siblings for a shapefile)."""
    digest = hashlib.sha256()
    paths = [path]
    if path.suffix.lower() == ".shp":
        paths = sorted(p for p in path.parent.glob(path.stem + ".*") if p.is_file())
    for part in paths:
        digest.update(part.read_bytes())
    return digest.hexdigest()


# Shapefiles and GeoPackages are read this many features at a time (GDAL seeks to a feature
# there), so a file's vertices are counted as it is read and a file past the limit is refused
# before the rest of it is in memory. GeoJSON is read whole: GDAL parses it again for every batch.
READ_BATCH = 10_000
_SEEKABLE = (".shp", ".zip", ".gpkg")


def read_file(
    path: Path,
    *,
    layer: str | None = None,
    max_features: int | None = None,
    max_vertices: int | None = None,
    batch_size: int = READ_BATCH,
) -> SourceFile:
    """Read a GeoJSON, GeoPackage or Shapefile (.shp with siblings, or a .zip).

    With ``max_features`` a file holding more is refused (PayloadTooLarge) from its layer's
    feature count, before any geometry is read into memory; with ``max_vertices`` a file
    holding more vertices is refused as soon as a batch read takes it past the limit.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise Invalid(f"{path.name}: unsupported file type {suffix!r}; use {', '.join(SUPPORTED)}")
    if not path.is_file():
        raise Invalid(f"no file at {path}")
    if suffix == ".shp":
        missing = [ext for ext in (".shx", ".dbf") if not _sibling(path, ext)]
        if missing:
            raise Invalid(
                f"{path.name}: the shapefile's {' and '.join(missing)} beside it are missing"
            )
    import pyogrio

    try:
        count = int(pyogrio.read_info(path, layer=layer).get("features", -1))
    except Exception as error:  # the same errors as reading it: one message
        raise Invalid(f"cannot read {path.name}: {error}") from error
    if max_features is not None and count > max_features:
        raise PayloadTooLarge(
            f"{path.name} holds {count} features; one import takes at most {max_features} "
            "(split the file)",
            limit=max_features,
        )
    batch = batch_size if suffix in _SEEKABLE and count > batch_size else None
    geoms: list[Any] = []
    props: list[dict[str, Any]] = []
    crs: str | None = None
    vertices = 0
    while True:
        try:
            frame = pyogrio.read_dataframe(
                path, layer=layer, on_invalid="ignore", skip_features=len(geoms), max_features=batch
            )
        except Exception as error:  # pyogrio raises several DataSource/Field errors: one message
            raise Invalid(f"cannot read {path.name}: {error}") from error
        crs = frame.crs.to_string() if frame.crs is not None else None
        chunk = list(frame.geometry.values)
        present = np.asarray([g for g in chunk if g is not None], dtype=object)
        vertices += int(shapely.get_num_coordinates(present).sum()) if len(present) else 0
        if max_vertices is not None and vertices > max_vertices:
            raise PayloadTooLarge(
                f"{path.name} holds more than {max_vertices} vertices ({vertices} in its first "
                f"{len(geoms) + len(chunk)} features); one import takes at most {max_vertices} "
                "(split the file)",
                limit=max_vertices,
            )
        geoms.extend(chunk)
        table = frame.drop(columns=frame.geometry.name).to_dict(orient="records")
        props.extend(_plain(p) for p in table)
        del frame, table
        if batch is None or len(chunk) < batch or len(geoms) >= count:
            break
    return SourceFile(path.name, file_sha256(path), crs, geoms, props)


def read_geojson(document: Mapping[str, Any], *, filename: str = "request") -> SourceFile:
    """Features of a GeoJSON FeatureCollection (or one Feature) already parsed from JSON."""
    kind = document.get("type")
    if kind == "Feature":
        features: Sequence[Any] = [document]
    elif kind == "FeatureCollection" and isinstance(document.get("features"), list):
        features = document["features"]
    else:
        raise Invalid("the body must be a GeoJSON FeatureCollection or Feature")
    geoms: list[Any] = []
    props: list[dict[str, Any]] = []
    for feature in features:
        geometry = feature.get("geometry") if isinstance(feature, Mapping) else None
        try:
            geoms.append(shape_from_geojson(geometry) if geometry else None)
        except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError):
            geoms.append(_Unreadable(geometry))
        raw = feature.get("properties") if isinstance(feature, Mapping) else None
        props.append(dict(raw) if isinstance(raw, Mapping) else {})
    body = json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
    return SourceFile(filename, hashlib.sha256(body).hexdigest(), None, geoms, props)


@dataclass(frozen=True)
class _Unreadable:
    """A feature geometry that is not GeoJSON: kept so the report can name it."""

    raw: Any


def _sibling(path: Path, ext: str) -> bool:
    return any(path.with_suffix(e).is_file() for e in (ext, ext.upper()))


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, float) and math.isnan(item):
            continue
        if isinstance(item, np.generic):
            item = item.item()
        out[str(key)] = item
    return out


def _first(props: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = props.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


@dataclass(frozen=True)
class ImportOptions:
    fbfbm: str
    source: parcels.SourceCrs = field(default_factory=parcels.SourceCrs)
    allow_repair: bool = False
    all_or_nothing: bool = False
    land_use: str | None = None  # for features without one
    season_year: int | None = None  # crop_summer / crop_winter belong to this year
    valid_from: dt.date | None = None
    keep_codes: bool = True  # a feature's own DKBM is kept; False: every feature gets a new one


def _items(
    session: Session, source: SourceFile, options: ImportOptions
) -> tuple[list[parcels.ParcelIn | None], dict[int, str]]:
    """ParcelIn per feature, or None with a reason for features whose attributes are bad."""
    year = options.season_year or parcels.today().year
    cbfbms = {c for p in source.properties if (c := _first(p, _CBFBM_KEYS))}
    households = dict(
        session.execute(
            select(Household.cbfbm, Household.id).where(Household.cbfbm.in_(sorted(cbfbms)))
        ).all()
    )
    usccs = {u for p in source.properties if (u := _first(p, _OPERATOR_KEYS))}
    cooperatives = dict(
        session.execute(
            select(Cooperative.uscc, Cooperative.id).where(Cooperative.uscc.in_(sorted(usccs)))
        ).all()
    )
    items: list[parcels.ParcelIn | None] = []
    reasons: dict[int, str] = {}
    for index, (geom, props) in enumerate(zip(source.geometries, source.properties, strict=True)):
        if geom is None or (not isinstance(geom, _Unreadable) and geom.is_empty):
            reasons[index] = "empty geometry: the feature has no coordinates"
        elif isinstance(geom, _Unreadable):
            reasons[index] = f"geometry is not valid GeoJSON: {str(geom.raw)[:80]}"
        land_use = _first(props, _LAND_USE_KEYS) or options.land_use
        if index not in reasons and land_use is None:
            reasons[index] = "no land use: give a land_use (GB/T 21010) property or --land-use"
        cbfbm = _first(props, _CBFBM_KEYS)
        if index not in reasons and cbfbm is not None and cbfbm not in households:
            reasons[index] = f"unknown household 承包方编码 {cbfbm}"
        uscc = _first(props, _OPERATOR_KEYS)
        if index not in reasons and uscc is not None and uscc not in cooperatives:
            reasons[index] = f"unknown operator cooperative {uscc}"
        if index in reasons:
            items.append(None)
            continue
        crops = []
        for season in landuse.SEASONS:
            crop = _first(props, (f"crop_{season}",))
            if crop:
                crops.append((f"{year}-{season}", crop))
        if (crop := _first(props, ("crop",))) and (season_label := _first(props, ("season",))):
            crops.append((season_label, crop))
        items.append(
            parcels.ParcelIn(
                geometry=geom,
                land_use=str(land_use),
                fbfbm=_first(props, _FBFBM_KEYS),
                name=_first(props, _NAME_KEYS),
                bdcdyh=_first(props, _BDCDYH_KEYS),
                contractor_household_id=households.get(cbfbm) if cbfbm else None,
                operator_cooperative_id=cooperatives.get(uscc) if uscc else None,
                crops=tuple(crops),
                dkbm=_first(props, _DKBM_KEYS) if options.keep_codes else None,
            )
        )
    return items, reasons


def _source_crs(source: SourceFile, given: parcels.SourceCrs) -> parcels.SourceCrs:
    """The CRS to read a file's coordinates in: --crs if given, else the file's own."""
    if given.crs is not None or source.crs is None:
        return given
    own = parcels.parse_source_crs(source.crs)
    if own.crs is not None and given.datum != "wgs84" and geometry.is_projected(own.crs):
        raise Invalid(
            f"{source.filename} is in {source.crs}, projected metres; {given.datum} is for "
            "lon/lat copied from a consumer map, so give no CRS"
        )
    return parcels.SourceCrs(crs=own.crs, datum=given.datum)


@dataclass(frozen=True)
class ImportLimits:
    """How much one import may ask for (``DV_IMPORT_MAX_FEATURES``, ``DV_IMPORT_MAX_VERTICES``,
    ``DV_PARCEL_MAX_VERTICES``): beyond the first two the import is refused whole (413), a
    feature beyond the third is rejected alone."""

    features: int = 100_000
    vertices: int = 5_000_000
    vertices_per_parcel: int = 20_000

    @classmethod
    def of(cls, settings: Settings) -> ImportLimits:
        return cls(
            settings.import_max_features,
            settings.import_max_vertices,
            settings.parcel_max_vertices,
        )


def _vertex_reasons(source: SourceFile, limits: ImportLimits) -> dict[int, str]:
    """Refuse an import too big to check in one go; name each feature with too many vertices."""
    if len(source.geometries) > limits.features:
        raise PayloadTooLarge(
            f"{source.filename} holds {len(source.geometries)} features; one import takes at "
            f"most {limits.features} (split the file)",
            limit=limits.features,
        )
    readable = [
        index
        for index, geom in enumerate(source.geometries)
        if geom is not None and not isinstance(geom, _Unreadable)
    ]
    counts = shapely.get_num_coordinates(
        np.asarray([source.geometries[i] for i in readable], dtype=object)
    )
    total = int(counts.sum()) if len(readable) else 0
    if total > limits.vertices:
        raise PayloadTooLarge(
            f"{source.filename} holds {total} vertices; one import takes at most "
            f"{limits.vertices} (split the file)",
            limit=limits.vertices,
        )
    return {
        index: f"{int(count)} vertices; a parcel has at most {limits.vertices_per_parcel}"
        for index, count in zip(readable, counts, strict=True)
        if count > limits.vertices_per_parcel
    }


def import_features(
    *,
    database: Database,
    ledger: Ledger,
    source: SourceFile,
    options: ImportOptions,
    actor: Actor,
    limits: ImportLimits | None = None,
    progress: Callable[[int], None] | None = None,
    writes: list[float] | None = None,
) -> parcels.RegisterReport:
    """Register a file's features; report every created parcel and rejected feature.

    A long job, so it manages its own transactions: every feature is read and checked in one
    read transaction, which locks nothing; then the good ones are stored in chunks of one short
    write transaction each (``bulk.write_in_chunks``; ``writes`` gets how long each held the
    writer), each first refusing what overlaps a parcel registered meanwhile. With
    ``all_or_nothing`` nothing is written unless every feature passed, and then all are stored
    in one write transaction (``stored`` is False, and nothing kept, if a parcel registered
    meanwhile got in the way). ``progress`` counts features checked, then features stored.
    """
    checked, previous, reasons, count = _check_all(database, source, options, actor, limits)
    report = checked.report
    report.already_imported = previous
    report.rejected.extend(parcels.Rejected(i, reason) for i, reason in reasons.items())
    report.rejected.sort(key=lambda r: r.feature)
    if progress:
        progress(count + count - len(checked.candidates))
    if options.all_or_nothing and report.rejected:
        report.stored = False
        return report
    start = options.valid_from or parcels.today()

    def store(session: Session, chunk: Sequence[registry.Candidate]) -> None:
        registry.store_checked(session, ledger, checked, chunk, start=start)
        if progress:
            progress(len(chunk))

    if options.all_or_nothing:
        try:
            write_in_chunks(
                database,
                checked.candidates,
                _all_or_nothing(store, report),
                first=len(checked.candidates),
                durations=writes,
            )
        except _Refused:
            report.stored = False
            report.created = []
            return report
    else:
        write_in_chunks(database, checked.candidates, store, durations=writes)
    with database.transaction(write=True) as session:
        parcels.record_import(
            session=session,
            file_sha256=source.sha256,
            filename=source.filename,
            fbfbm=options.fbfbm,
            created=len(report.created),
            rejected=len(report.rejected),
        )
    return report


def _check_all(
    database: Database,
    source: SourceFile,
    options: ImportOptions,
    actor: Actor,
    limits: ImportLimits | None,
) -> tuple[registry.Checked, dict[str, Any] | None, dict[int, str], int]:
    """Every feature read and checked in one read transaction: the checked candidates, the
    earlier import of the same file if any, the reasons features were refused before the
    checks (unreadable, too many vertices), and how many features the file holds."""
    too_big = _vertex_reasons(source, limits or ImportLimits())
    with database.transaction(write=False) as session:
        base = parcels.check_fbfbm(session=session, fbfbm=options.fbfbm)
        parcels.require_region_scope(session=session, actor=actor, fbfbm=base.fbfbm)
        source_crs = _source_crs(source, options.source)
        previous = parcels.find_import(session=session, file_sha256=source.sha256)
        items, reasons = _items(session, source, options)
        for index, reason in too_big.items():
            if items[index] is not None:
                items[index] = None
                reasons[index] = reason
        indexes = [i for i, item in enumerate(items) if item is not None]
        checked = registry.check_many(
            session=session,
            fbfbm=options.fbfbm,
            items=[item for i in indexes if (item := items[i]) is not None],
            actor=actor,
            source=source_crs,
            allow_repair=options.allow_repair,
            feature_numbers=indexes,
        )
    return checked, previous, reasons, len(items)


class _Refused(Exception):
    """Rolls back an all-or-nothing store that a parcel registered meanwhile got in the way of."""


def _all_or_nothing(
    store: Callable[[Session, Sequence[registry.Candidate]], None], report: parcels.RegisterReport
) -> Callable[[Session, Sequence[registry.Candidate]], None]:
    def store_all(session: Session, chunk: Sequence[registry.Candidate]) -> None:
        rejected = len(report.rejected)
        store(session, chunk)
        if len(report.rejected) > rejected:
            raise _Refused

    return store_all
