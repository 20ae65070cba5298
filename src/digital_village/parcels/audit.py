"""The map's records against the ledger: every parcel as its chain of entries records it.

A ``RecordChecker`` for the log audit (``digital_village.audit`` composes it), and
``check_parcel`` for one parcel (``/api/v1/parcels/{dkbm}/verify``). Parcels are read in
batches with their chains (``parcel:<dkbm>``, folded by ``parcels.recorded``), holdings and
attributes; an edit is named by the parcel (``parcel:<dkbm>``) and the entry that records the
value: the geometry bytes, their hash column, the PostGIS column, the bounding box and the area
(m², 亩, ha) against the SHA-256 and areas of the newest entry recording a shape (the
registration, or a resurvey under the same DKBM); every shape kept in history against the
entry that recorded it, and every such entry but the newest against its kept shape; the code
and 发包方 against the registration; the land use against the last entry that set it; every
holding period (承包方 and operating cooperative by code, from when) and every land use, crop
and 不动产单元代码 period against the entry it names. Crops of parcels registered before
registrations recorded them are counted, not passed. Stored values are read raw
(``ledger.stored``): a value of another type is a finding, never a traceback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import shapely
from sqlalchemy import Select, literal, literal_column, select
from sqlalchemy.orm import Session

from digital_village.errors import NotFound
from digital_village.jsonpointer import MISSING
from digital_village.ledger import reads
from digital_village.ledger.audit import BATCH, Found, Problem, RecordChecker, keyset
from digital_village.ledger.stored import UNREADABLE, as_bytes, as_date, as_number, raw
from digital_village.parcels import recorded
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelGeometry,
    ParcelHolding,
)
from digital_village.regions.models import Cooperative, Household

# Areas are recorded rounded: m² to the centimetre², 亩 to 4 decimals.
AREA_M2_DIGITS: Final = 2
AREA_MU_DIGITS: Final = 4


def _parcel_rows(session: Session) -> Select[Any]:
    # On PostgreSQL spatial queries use the PostGIS column, kept from the WKB by a trigger:
    # an edit of that column alone would move the parcel on every map and search.
    geom_matches = (
        literal_column(
            "ST_OrderingEquals(parcel.geom, ST_SetSRID(ST_GeomFromWKB(parcel.geometry_wkb), 4490))"
        )
        if session.get_bind().dialect.name == "postgresql"
        else literal(True)
    )
    return select(
        raw(Parcel.id),
        raw(Parcel.dkbm),
        raw(Parcel.fbfbm),
        raw(Parcel.land_use),
        raw(Parcel.area_m2),
        raw(Parcel.area_mu),
        raw(Parcel.area_ha),
        raw(Parcel.geometry_wkb),
        raw(Parcel.geometry_sha256),
        raw(Parcel.min_lon),
        raw(Parcel.min_lat),
        raw(Parcel.max_lon),
        raw(Parcel.max_lat),
        raw(Parcel.last_seq),
        geom_matches.label("geom_matches"),
    )


def _batches(rows: Iterator[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class _Batch:
    """A batch of parcels with their chains, holdings and attributes, read in a few queries."""

    def __init__(self, session: Session, rows: list[Any]) -> None:
        self.rows = rows
        dkbms = [str(row.dkbm) for row in rows]
        ids = [row.id for row in rows if isinstance(row.id, int)]
        chains = reads.chain_entries(session, [recorded.chain_key(d) for d in dkbms])
        self.records = {
            dkbm: recorded.fold(
                dkbm,
                (
                    (seq, kind, reads.data_of(body))
                    for seq, kind, body in chains.get(recorded.chain_key(dkbm), [])
                ),
            )
            for dkbm in dkbms
        }
        self.holdings: dict[Any, list[Any]] = {}
        self.attributes: dict[Any, list[Any]] = {}
        self.shapes: dict[Any, list[Any]] = {}
        for start in range(0, len(ids), reads.CHUNK):
            chunk = ids[start : start + reads.CHUNK]
            for holding in session.execute(
                select(
                    raw(ParcelHolding.id),
                    raw(ParcelHolding.parcel_id),
                    raw(ParcelHolding.valid_from),
                    raw(ParcelHolding.ledger_seq),
                    Household.cbfbm.label("contractor"),
                    Cooperative.uscc.label("operator"),
                    raw(ParcelHolding.contractor_household_id),
                    raw(ParcelHolding.operator_cooperative_id),
                )
                .outerjoin(Household, Household.id == ParcelHolding.contractor_household_id)
                .outerjoin(Cooperative, Cooperative.id == ParcelHolding.operator_cooperative_id)
                .where(ParcelHolding.parcel_id.in_(chunk))
                .order_by(ParcelHolding.id)
            ):
                self.holdings.setdefault(holding.parcel_id, []).append(holding)
            for attribute in session.execute(
                select(
                    raw(ParcelAttribute.id),
                    raw(ParcelAttribute.parcel_id),
                    raw(ParcelAttribute.name),
                    raw(ParcelAttribute.value),
                    raw(ParcelAttribute.season),
                    raw(ParcelAttribute.valid_from),
                    raw(ParcelAttribute.ledger_seq),
                )
                .where(ParcelAttribute.parcel_id.in_(chunk))
                .order_by(ParcelAttribute.id)
            ):
                self.attributes.setdefault(attribute.parcel_id, []).append(attribute)
            for shape in session.execute(
                select(
                    raw(ParcelGeometry.id),
                    raw(ParcelGeometry.parcel_id),
                    raw(ParcelGeometry.geometry_wkb),
                    raw(ParcelGeometry.geometry_sha256),
                    raw(ParcelGeometry.area_m2),
                    raw(ParcelGeometry.area_mu),
                    raw(ParcelGeometry.valid_from),
                    raw(ParcelGeometry.valid_to),
                    raw(ParcelGeometry.ledger_seq),
                )
                .where(ParcelGeometry.parcel_id.in_(chunk))
                .order_by(ParcelGeometry.id)
            ):
                self.shapes.setdefault(shape.parcel_id, []).append(shape)


class ParcelChecker(RecordChecker):
    """Each parcel's rows against its chain of entries."""

    def finish(self, session: Session, found: Found) -> Mapping[str, int]:
        """Check every parcel; count them, their periods, and crops the ledger did not carry."""
        counts = dict.fromkeys(
            (
                "parcels",
                "parcel_holdings",
                "parcel_attributes",
                "parcel_shapes_kept",
                "crops_recorded_before",
            ),
            0,
        )
        for rows in _batches(keyset(session, _parcel_rows(session), Parcel.id)):
            batch = _Batch(session, rows)
            for row in rows:
                counts["parcels"] += 1
                counts["parcel_holdings"] += len(batch.holdings.get(row.id, []))
                counts["parcel_attributes"] += len(batch.attributes.get(row.id, []))
                counts["parcel_shapes_kept"] += len(batch.shapes.get(row.id, []))
                for problem in _check(row, batch, counts):
                    found(problem.index, problem.what, problem.subject)
        return counts


def check_parcel(*, session: Session, dkbm: str) -> list[Problem]:
    """One parcel's rows against its chain of entries, first problem first."""
    rows = session.execute(_parcel_rows(session).where(Parcel.dkbm == dkbm)).all()
    if not rows:
        raise NotFound(f"no parcel {dkbm}")
    return sorted(
        _check(rows[0], _Batch(session, list(rows)), {}), key=lambda problem: problem.index
    )


def _check(row: Any, batch: _Batch, counts: dict[str, int]) -> list[Problem]:
    name = f"parcel:{row.dkbm}"
    found: list[Problem] = []

    def problem(index: int, what: str) -> None:
        found.append(Problem(index, what, name))

    record = batch.records[str(row.dkbm)]
    if record.registered_seq is None or "geometry_sha256" not in record.registration:
        last = row.last_seq if isinstance(row.last_seq, int) else -1
        problem(last, f"parcel {row.dkbm} has no registration entry in the ledger")
        return found
    _check_registration(row, record, problem)
    _check_kept_shapes(row, record, batch.shapes.get(row.id, []), problem)
    _check_periods(
        row,
        record,
        batch.holdings.get(row.id, []),
        batch.attributes.get(row.id, []),
        problem,
        counts,
    )
    return found


def _check_registration(row: Any, record: recorded.ParcelRecord, problem: Any) -> None:
    registered = record.registered_seq
    for column, key, value in (("code", "dkbm", row.dkbm), ("发包方编码", "fbfbm", row.fbfbm)):
        if key in record.registration and value != record.registration[key]:
            problem(
                registered,
                f"parcel {row.dkbm}: stored {column} {_shown(value)} differs from the "
                f"{record.registration[key]} registered in ledger entry {registered}",
            )
    _check_shape(row, record, problem)
    land_use = record.land_use
    if land_use is not None and row.land_use != land_use.value:
        problem(
            land_use.seq,
            f"parcel {row.dkbm}: stored land use {_shown(row.land_use)} differs from the "
            f"{land_use.value} recorded in ledger entry {land_use.seq}",
        )


def _check_shape(row: Any, record: recorded.ParcelRecord, problem: Any) -> None:
    """The parcel's geometry, its copies and its areas against the newest shape entry."""
    seq, data = record.shapes[-1]
    recorded_as = "registered" if seq == record.registered_seq else "recorded by the resurvey"
    wkb = as_bytes(row.geometry_wkb)
    if wkb is UNREADABLE:
        problem(seq, f"parcel {row.dkbm}: the stored geometry is not bytes (column type changed)")
        return
    assert isinstance(wkb, bytes)
    digest = hashlib.sha256(wkb).hexdigest()
    if digest != data["geometry_sha256"]:
        problem(
            seq,
            f"parcel {row.dkbm}: the stored geometry (sha256 {digest[:16]}…) is not the one "
            f"{recorded_as} in ledger entry {seq} (sha256 {str(data['geometry_sha256'])[:16]}…): "
            "geometry edited",
        )
    elif row.geometry_sha256 != digest:
        problem(seq, f"parcel {row.dkbm}: the stored geometry hash column was edited")
    if not row.geom_matches:
        problem(
            seq,
            f"parcel {row.dkbm}: the PostGIS geometry (parcel.geom) differs from the registered "
            "geometry bytes: geom edited, so maps and spatial searches show another shape",
        )
    try:
        bounds: tuple[Any, ...] = tuple(shapely.from_wkb(wkb).bounds)
    except (shapely.errors.GEOSException, ValueError):
        problem(seq, f"parcel {row.dkbm}: the stored geometry bytes are not WKB")
        bounds = ()
    if bounds and bounds != (row.min_lon, row.min_lat, row.max_lon, row.max_lat):
        problem(
            seq,
            f"parcel {row.dkbm}: the stored bounding box differs from its geometry (edited: "
            "spatial searches would find the parcel elsewhere)",
        )
    for column, key, value in (
        ("area (m²)", "area_m2", _rounded(row.area_m2, AREA_M2_DIGITS)),
        ("area (亩)", "area_mu", _rounded(row.area_mu, AREA_MU_DIGITS)),
    ):
        if key in data and value != data[key]:
            problem(
                seq,
                f"parcel {row.dkbm}: stored {column} {_shown(value)} differs from the "
                f"{data[key]} {recorded_as} in ledger entry {seq}",
            )
    m2, ha = as_number(row.area_m2), as_number(row.area_ha)
    if isinstance(m2, float) and (not isinstance(ha, float) or abs(ha * 10_000 - m2) > 0.01):
        problem(seq, f"parcel {row.dkbm}: stored area (ha) {_shown(ha)} is not its area in m²")


def _check_kept_shapes(
    row: Any, record: recorded.ParcelRecord, kept: Sequence[Any], problem: Any
) -> None:
    """Each shape kept in history against the entry that recorded it, and the period it held
    against the entries' dates; every replaced shape's entry must have its kept shape."""
    entries = record.shapes
    position = {seq: index for index, (seq, _) in enumerate(entries)}
    named: set[Any] = set()
    for shape in kept:
        seq = shape.ledger_seq
        named.add(seq)
        index = position.get(seq) if isinstance(seq, int) else None
        what = f"kept shape {shape.id}"
        if index is None or index == len(entries) - 1:
            problem(
                seq if isinstance(seq, int) else -1,
                f"parcel {row.dkbm}: {what} names ledger entry {seq!r}, which records no shape "
                "it replaced (row added or edited behind the log)",
            )
            continue
        data = entries[index][1]
        wkb = as_bytes(shape.geometry_wkb)
        digest = hashlib.sha256(wkb).hexdigest() if isinstance(wkb, bytes) else None
        began = str(data.get("valid_from"))
        ended = str(entries[index + 1][1].get("valid_from"))
        shown = {
            "geometry's sha256": digest,
            "geometry_sha256": shape.geometry_sha256,
            "area_m2": _rounded(shape.area_m2, AREA_M2_DIGITS),
            "area_mu": _rounded(shape.area_mu, AREA_MU_DIGITS),
            "valid_from": _iso(shape.valid_from),
            "valid_to": _iso(shape.valid_to),
        }
        entered = {
            "geometry's sha256": data.get("geometry_sha256"),
            "geometry_sha256": data.get("geometry_sha256"),
            "area_m2": data.get("area_m2"),
            "area_mu": data.get("area_mu"),
            "valid_from": began,
            "valid_to": max(began, ended),
        }
        _first_difference(row.dkbm, what, seq, shown, entered, problem)
    for seq, _ in entries[:-1]:
        if seq not in named:
            problem(
                seq,
                f"parcel {row.dkbm}: the shape recorded in ledger entry {seq} was replaced by a "
                "resurvey but is not kept in history (row removed)",
            )


def _rounded(value: Any, digits: int) -> Any:
    number = as_number(value)
    return round(number, digits) if isinstance(number, float) else number


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) or value is UNREADABLE else f"{value:g}"


def _entry_holdings(record: recorded.ParcelRecord) -> dict[int, recorded.RecordedHolding]:
    return {holding.seq: holding for holding in record.holdings}


def _check_periods(
    row: Any,
    record: recorded.ParcelRecord,
    holdings: Sequence[Any],
    attributes: Sequence[Any],
    problem: Any,
    counts: dict[str, int],
) -> None:
    """Every holding and attribute period against the entry it names (and entries' holdings
    against the rows: a period removed behind the log)."""
    recorded_holdings = _entry_holdings(record)
    named: set[Any] = set()
    for holding in holdings:
        seq = holding.ledger_seq
        named.add(seq)
        entry = recorded_holdings.get(seq) if isinstance(seq, int) else None
        if entry is None:
            problem(
                seq if isinstance(seq, int) else -1,
                f"parcel {row.dkbm}: holding {holding.id} names ledger entry {seq!r}, which "
                "records no holders of it (row added or edited behind the log)",
            )
            continue
        shown = {
            "承包方": holding.contractor,
            "operator": holding.operator,
            "valid_from": _iso(holding.valid_from),
        }
        entered = {
            "承包方": entry.contractor,
            "operator": entry.operator,
            "valid_from": entry.valid_from,
        }
        _first_difference(row.dkbm, f"holding {holding.id}", seq, shown, entered, problem)
    for seq, holding in recorded_holdings.items():
        if seq not in named and (holding.contractor or holding.operator):
            problem(
                seq,
                f"parcel {row.dkbm}: the holders recorded in ledger entry {seq} have no holding "
                "row (row removed)",
            )
    for attribute in attributes:
        _check_attribute(row, record, attribute, problem, counts)


def _check_attribute(
    row: Any, record: recorded.ParcelRecord, attribute: Any, problem: Any, counts: dict[str, int]
) -> None:
    seq = attribute.ledger_seq
    what = f"{attribute.name} period {attribute.id}"
    data = record.entries.get(seq) if isinstance(seq, int) else None
    if data is None:
        problem(
            seq if isinstance(seq, int) else -1,
            f"parcel {row.dkbm}: {what} names ledger entry {seq!r}, which is not in its chain "
            "(row added or edited behind the log)",
        )
        return
    kind, values = data
    recorded_value: Any = values.get(attribute.name, MISSING)
    if attribute.name == "crop":
        if kind == recorded.REGISTERED:
            if "crops" not in values:
                counts["crops_recorded_before"] = counts.get("crops_recorded_before", 0) + 1
                return
            crops = values["crops"]
            crops = crops if isinstance(crops, dict) else {}
            recorded_value = crops.get(attribute.season, MISSING)
        else:
            crop = values.get("crop")
            crop = crop if isinstance(crop, dict) else {}
            same_season = crop.get("season") == attribute.season
            recorded_value = crop.get("crop") if same_season else MISSING
    shown = {"value": attribute.value}
    entered = {"value": recorded_value}
    if attribute.name != "crop":
        # Crop periods are a season's; the others start when their entry says.
        shown["valid_from"] = _iso(attribute.valid_from)
        entered["valid_from"] = values.get("valid_from")
    _first_difference(row.dkbm, what, seq, shown, entered, problem)


def _first_difference(
    dkbm: Any,
    what: str,
    seq: int,
    shown: Mapping[str, Any],
    entered: Mapping[str, Any],
    problem: Any,
) -> None:
    for key, value in shown.items():
        if value != entered[key]:
            problem(
                seq,
                f"parcel {dkbm}: {what}'s {key} is {value!r} in its row but "
                f"{entered[key]!r} in ledger entry {seq}: row edited",
            )
            return


def _iso(value: Any) -> Any:
    day = as_date(value)
    return day.isoformat() if day is not UNREADABLE else UNREADABLE  # type: ignore[union-attr]
