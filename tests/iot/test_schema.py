"""The net's migration matches its models, and stored metric codes cover the catalogue."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from digital_village import models
from digital_village.iot import metrics, shapes

NET_TABLES = {
    "device",
    "device_installation",
    "reading",
    "reading_day",
    "reading_seal",
    "iot_integration",
    "lorawan_uplink",
    "alert_rule",
    "alert",
    "metric_policy",
}


def _table_of(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    assert isinstance(item, tuple)
    for part in item[1:]:
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if name in NET_TABLES:
            return str(name)
        if isinstance(part, str) and part in NET_TABLES:
            return part
    return None


def test_migration_0005_matches_the_models(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [
            diff
            for diff in compare_metadata(context, models.Base.metadata)
            if _table_of(diff) in NET_TABLES
        ]
    assert differences == []


def test_every_catalogue_metric_has_a_stable_code() -> None:
    assert set(shapes.METRIC_CODES) == set(metrics.CATALOGUE)
    assert len(set(shapes.METRIC_CODES.values())) == len(shapes.METRIC_CODES)
    # Codes are stored: these must never change.
    assert shapes.METRIC_CODES["soil_moisture"] == 1
    assert shapes.METRIC_CODES["battery"] == 12
