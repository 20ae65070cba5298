"""Spatial lookups use the spatial index: SQLite's R*Tree, PostgreSQL's GiST on PostGIS."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from digital_village.parcels import store
from tests.parcels.conftest import field

WHERE = field(1, 1).centroid


def _plan(session: Session, backend: str, sql: str, params: dict[str, float]) -> str:
    if backend == "postgres":
        # A handful of rows is cheaper to scan: forbid that, so the plan shows the index use.
        session.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(session.execute(text(f"EXPLAIN {sql}"), params).scalars())
    rows = session.execute(text(f"EXPLAIN QUERY PLAN {sql}"), params).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_point_lookup_uses_the_spatial_index(
    session: Session, backend: str, grid: list[str]
) -> None:
    if backend == "postgres":
        plan = _plan(
            session, backend, store._POSTGRES_LOCATE.text, {"lon": WHERE.x, "lat": WHERE.y}
        )
        assert "ix_parcel_geom" in plan, plan
    else:
        # The statement locate_id sends on the sqlite3 connection, with named parameters.
        sql = store._SQLITE_LOCATE.replace("?", ":lon", 2).replace("?", ":lat", 2)
        plan = _plan(session, backend, sql, {"lon": WHERE.x, "lat": WHERE.y})
        assert "VIRTUAL TABLE INDEX" in plan and "SEARCH p USING INTEGER PRIMARY KEY" in plan
        assert "SCAN p" not in plan, plan
    found = store.locate_id(session=session, lon=WHERE.x, lat=WHERE.y)
    assert found is not None


def test_bbox_queries_use_the_spatial_index(
    session: Session, backend: str, grid: list[str]
) -> None:
    bounds = field(0, 0).bounds
    statement = store.bbox_ids(session, bounds).element  # the text() under .columns()
    plan = _plan(session, backend, statement.text, dict(zip("abcd", bounds, strict=True)))
    if backend == "postgres":
        assert "ix_parcel_geom" in plan, plan
    else:
        assert "VIRTUAL TABLE INDEX" in plan, plan
