"""Parcels: the registry, code sequences, attribute history, lineage, imports, spatial index.

Revision ID: 0003
Revises: 0001
Depends on: 0002 (the ledger: parcels keep the seq of their last entry)
Create Date: 2026-11-27 12:40:00

The spatial index is backend-specific and lives outside the ORM models:
- SQLite: an R*Tree virtual table ``parcel_rtree`` (id, lon and lat bounds), filled by
  triggers on ``parcel`` so no code path can forget it.
- PostgreSQL: a PostGIS column ``parcel.geom`` (SRID 4490) set from ``geometry_wkb`` by a
  trigger, with a GiST index; spatial predicates run in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0002"

_STATUS = sa.Enum("active", "retired", name="parcelstatus", native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        "parcel",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dkbm", sa.String(length=19), nullable=False),
        sa.Column("fbfbm", sa.String(length=14), nullable=False),
        sa.Column("township_code", sa.String(length=14), nullable=False),
        sa.Column("village_code", sa.String(length=14), nullable=False),
        sa.Column("group_code", sa.String(length=14), nullable=True),
        sa.Column("name", sa.String(length=50), nullable=True),
        sa.Column("bdcdyh", sa.String(length=28), nullable=True),
        sa.Column("land_use", sa.String(length=4), nullable=False),
        sa.Column("status", _STATUS, nullable=False),
        sa.Column("area_m2", sa.Double(), nullable=False),
        sa.Column("area_mu", sa.Double(), nullable=False),
        sa.Column("area_ha", sa.Double(), nullable=False),
        sa.Column("geodesic_m2", sa.Double(), nullable=False),
        sa.Column("epsg", sa.Integer(), nullable=False),
        sa.Column("geometry_wkb", sa.LargeBinary(), nullable=False),
        sa.Column("geometry_sha256", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("min_lon", sa.Double(), nullable=False),
        sa.Column("min_lat", sa.Double(), nullable=False),
        sa.Column("max_lon", sa.Double(), nullable=False),
        sa.Column("max_lat", sa.Double(), nullable=False),
        sa.Column("sliver_reason", sa.String(length=200), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["township_code"], ["region.code"], name=op.f("fk_parcel_township_code_region")
        ),
        sa.ForeignKeyConstraint(
            ["village_code"], ["region.code"], name=op.f("fk_parcel_village_code_region")
        ),
        sa.ForeignKeyConstraint(
            ["group_code"], ["region.code"], name=op.f("fk_parcel_group_code_region")
        ),
        sa.ForeignKeyConstraint(
            ["last_seq"], ["ledger_entry.seq"], name=op.f("fk_parcel_last_seq_ledger_entry")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcel")),
        sa.UniqueConstraint("dkbm", name=op.f("uq_parcel_dkbm")),
    )
    with op.batch_alter_table("parcel", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parcel_fbfbm"), ["fbfbm"], unique=False)
        batch_op.create_index(batch_op.f("ix_parcel_fingerprint"), ["fingerprint"], unique=False)
        batch_op.create_index(batch_op.f("ix_parcel_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_parcel_township_code"), ["township_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_parcel_village_code"), ["village_code"], unique=False)

    op.create_table(
        "parcel_sequence",
        sa.Column("fbfbm", sa.String(length=14), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("fbfbm", name=op.f("pk_parcel_sequence")),
    )
    op.create_table(
        "parcel_holding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parcel_id", sa.Integer(), nullable=False),
        sa.Column("contractor_household_id", sa.Integer(), nullable=True),
        sa.Column("operator_cooperative_id", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcel.id"], name=op.f("fk_parcel_holding_parcel_id_parcel")
        ),
        sa.ForeignKeyConstraint(
            ["contractor_household_id"],
            ["household.id"],
            name=op.f("fk_parcel_holding_contractor_household_id_household"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_parcel_holding_operator_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_parcel_holding_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcel_holding")),
    )
    with op.batch_alter_table("parcel_holding", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parcel_holding_parcel_id"), ["parcel_id"])
        batch_op.create_index(
            batch_op.f("ix_parcel_holding_contractor_household_id"), ["contractor_household_id"]
        )
        batch_op.create_index(
            batch_op.f("ix_parcel_holding_operator_cooperative_id"), ["operator_cooperative_id"]
        )

    op.create_table(
        "parcel_attribute",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parcel_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=40), nullable=False),
        sa.Column("season", sa.String(length=16), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("superseded_at", UTCDateTime(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcel.id"], name=op.f("fk_parcel_attribute_parcel_id_parcel")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_parcel_attribute_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcel_attribute")),
    )
    with op.batch_alter_table("parcel_attribute", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parcel_attribute_parcel_id"), ["parcel_id"])

    op.create_table(
        "parcel_lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["parcel.id"], name=op.f("fk_parcel_lineage_parent_id_parcel")
        ),
        sa.ForeignKeyConstraint(
            ["child_id"], ["parcel.id"], name=op.f("fk_parcel_lineage_child_id_parcel")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_parcel_lineage_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcel_lineage")),
    )
    with op.batch_alter_table("parcel_lineage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parcel_lineage_parent_id"), ["parent_id"])
        batch_op.create_index(batch_op.f("ix_parcel_lineage_child_id"), ["child_id"])

    op.create_table(
        "parcel_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("fbfbm", sa.String(length=14), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcel_import")),
    )
    with op.batch_alter_table("parcel_import", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parcel_import_file_sha256"), ["file_sha256"])

    if op.get_bind().dialect.name == "postgresql":
        _postgis_index()
    else:
        _sqlite_rtree()


def _postgis_index() -> None:
    from geoalchemy2 import Geometry

    op.add_column(
        "parcel",
        sa.Column("geom", Geometry("GEOMETRY", srid=4490, spatial_index=False), nullable=True),
    )
    op.execute(
        """
        CREATE FUNCTION parcel_geom_from_wkb() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.geom := ST_SetSRID(ST_GeomFromWKB(NEW.geometry_wkb), 4490);
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER parcel_geom_sync BEFORE INSERT OR UPDATE OF geometry_wkb ON parcel "
        "FOR EACH ROW EXECUTE FUNCTION parcel_geom_from_wkb()"
    )
    op.execute("CREATE INDEX ix_parcel_geom ON parcel USING gist (geom)")


def _sqlite_rtree() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE parcel_rtree USING rtree(id, min_lon, max_lon, min_lat, max_lat)"
    )
    op.execute(
        """
        CREATE TRIGGER parcel_rtree_insert AFTER INSERT ON parcel BEGIN
            INSERT INTO parcel_rtree (id, min_lon, max_lon, min_lat, max_lat)
            VALUES (NEW.id, NEW.min_lon, NEW.max_lon, NEW.min_lat, NEW.max_lat);
        END
        """
    )
    op.execute(
        """
        CREATE TRIGGER parcel_rtree_update
        AFTER UPDATE OF min_lon, max_lon, min_lat, max_lat ON parcel BEGIN
            UPDATE parcel_rtree SET min_lon = NEW.min_lon, max_lon = NEW.max_lon,
                min_lat = NEW.min_lat, max_lat = NEW.max_lat WHERE id = NEW.id;
        END
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS parcel_geom_sync ON parcel")
        op.execute("DROP FUNCTION IF EXISTS parcel_geom_from_wkb()")
    else:
        op.execute("DROP TRIGGER IF EXISTS parcel_rtree_update")
        op.execute("DROP TRIGGER IF EXISTS parcel_rtree_insert")
        op.execute("DROP TABLE IF EXISTS parcel_rtree")
    for table in (
        "parcel_import",
        "parcel_lineage",
        "parcel_attribute",
        "parcel_holding",
        "parcel_sequence",
        "parcel",
    ):
        op.drop_table(table)
