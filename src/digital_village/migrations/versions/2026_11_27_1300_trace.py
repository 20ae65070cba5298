"""Trace: products, lots, serial units, EPCIS events and captures, lineage edges, certificates.

Revision ID: 0004
Revises: 0001
Depends on: 0002 (the ledger: events, products and certificates keep their entry's seq)
Create Date: 2026-11-27 13:00:00

Lineage tables are indexed both ways (input→output and output→input) so that backward and
forward traces are indexed recursive queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from digital_village.db import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0002"


def upgrade() -> None:
    op.create_table(
        "trace_capture",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=True),
        sa.Column("token_public_id", sa.String(length=16), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_capture")),
    )
    op.create_table(
        "trace_product",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("unit", sa.String(length=3), nullable=False),
        sa.Column("net_quantity", sa.Double(), nullable=True),
        sa.Column("net_unit", sa.String(length=3), nullable=True),
        sa.Column("cooperative_id", sa.Integer(), nullable=False),
        sa.Column("yield_min_per_mu", sa.Double(), nullable=True),
        sa.Column("yield_max_per_mu", sa.Double(), nullable=True),
        sa.Column("ratio_min", sa.Double(), nullable=True),
        sa.Column("ratio_max", sa.Double(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_trace_product_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_trace_product_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_product")),
        sa.UniqueConstraint("gtin", name=op.f("uq_trace_product_gtin")),
    )
    with op.batch_alter_table("trace_product", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trace_product_cooperative_id"), ["cooperative_id"], unique=False
        )

    op.create_table(
        "trace_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=300), nullable=False),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=True),
        sa.Column("biz_step", sa.String(length=300), nullable=True),
        sa.Column("disposition", sa.String(length=300), nullable=True),
        sa.Column("read_point", sa.String(length=300), nullable=True),
        sa.Column("biz_location", sa.String(length=300), nullable=True),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("record_time", UTCDateTime(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("capture_id", sa.String(length=32), nullable=True),
        sa.Column("cooperative_id", sa.Integer(), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("declares_pk", sa.BigInteger(), nullable=True),
        sa.Column("erroneous_since", UTCDateTime(), nullable=True),
        sa.Column("declared_by_pk", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["capture_id"],
            ["trace_capture.id"],
            name=op.f("fk_trace_event_capture_id_trace_capture"),
        ),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_trace_event_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["declared_by_pk"],
            ["trace_event.id"],
            name=op.f("fk_trace_event_declared_by_pk_trace_event"),
        ),
        sa.ForeignKeyConstraint(
            ["declares_pk"], ["trace_event.id"], name=op.f("fk_trace_event_declares_pk_trace_event")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_trace_event_household_id_household")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_trace_event_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_event")),
        sa.UniqueConstraint("ledger_seq", name=op.f("uq_trace_event_ledger_seq")),
    )
    with op.batch_alter_table("trace_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trace_event_biz_location"), ["biz_location"], unique=False
        )
        batch_op.create_index(
            "ix_trace_event_biz_step_time", ["biz_step", "event_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_event_capture_id"), ["capture_id"], unique=False)
        batch_op.create_index(
            "ix_trace_event_cooperative_time", ["cooperative_id", "event_time"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_trace_event_declares_pk"), ["declares_pk"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_event_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trace_event_event_time"), ["event_time"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trace_event_household_id"), ["household_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_event_read_point"), ["read_point"], unique=False)

    op.create_table(
        "trace_lot",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=False),
        sa.Column("lot", sa.String(length=20), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("produced", sa.Double(), nullable=False),
        sa.Column("consumed", sa.Double(), nullable=False),
        sa.Column("produced_at", UTCDateTime(), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_trace_lot_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["trace_product.id"], name=op.f("fk_trace_lot_product_id_trace_product")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_lot")),
        sa.UniqueConstraint("gtin", "lot", name=op.f("uq_trace_lot_gtin_lot")),
    )
    with op.batch_alter_table("trace_lot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trace_lot_cooperative_id"), ["cooperative_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_lot_product_id"), ["product_id"], unique=False)

    op.create_table(
        "trace_certificate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.Column("unit", sa.String(length=3), nullable=False),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("issuer", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=40), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("commitments", sa.Text(), nullable=False),
        sa.Column("cooperative_id", sa.Integer(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_trace_certificate_cooperative_id_cooperative"),
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_trace_certificate_ledger_seq_ledger_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["trace_lot.id"], name=op.f("fk_trace_certificate_lot_id_trace_lot")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_certificate")),
        sa.UniqueConstraint("number", name=op.f("uq_trace_certificate_number")),
    )
    with op.batch_alter_table("trace_certificate", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trace_certificate_cooperative_id"), ["cooperative_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_certificate_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "trace_event_epc",
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("epc", sa.String(length=300), nullable=False),
        sa.Column("field", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_pk"], ["trace_event.id"], name=op.f("fk_trace_event_epc_event_pk_trace_event")
        ),
        sa.PrimaryKeyConstraint("event_pk", "epc", "field", name=op.f("pk_trace_event_epc")),
    )
    with op.batch_alter_table("trace_event_epc", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_event_epc_epc"), ["epc"], unique=False)

    op.create_table(
        "trace_event_lot",
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_pk"], ["trace_event.id"], name=op.f("fk_trace_event_lot_event_pk_trace_event")
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["trace_lot.id"], name=op.f("fk_trace_event_lot_lot_id_trace_lot")
        ),
        sa.PrimaryKeyConstraint("event_pk", "lot_id", "role", name=op.f("pk_trace_event_lot")),
    )
    with op.batch_alter_table("trace_event_lot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_event_lot_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "trace_event_parcel",
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("dkbm", sa.String(length=19), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_pk"],
            ["trace_event.id"],
            name=op.f("fk_trace_event_parcel_event_pk_trace_event"),
        ),
        sa.PrimaryKeyConstraint("event_pk", "dkbm", name=op.f("pk_trace_event_parcel")),
    )
    with op.batch_alter_table("trace_event_parcel", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trace_event_parcel_dkbm_time", ["dkbm", "event_time"], unique=False
        )

    op.create_table(
        "trace_lot_edge",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("input_lot_id", sa.BigInteger(), nullable=False),
        sa.Column("output_lot_id", sa.BigInteger(), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_pk"], ["trace_event.id"], name=op.f("fk_trace_lot_edge_event_pk_trace_event")
        ),
        sa.ForeignKeyConstraint(
            ["input_lot_id"],
            ["trace_lot.id"],
            name=op.f("fk_trace_lot_edge_input_lot_id_trace_lot"),
        ),
        sa.ForeignKeyConstraint(
            ["output_lot_id"],
            ["trace_lot.id"],
            name=op.f("fk_trace_lot_edge_output_lot_id_trace_lot"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_lot_edge")),
    )
    with op.batch_alter_table("trace_lot_edge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_lot_edge_event_pk"), ["event_pk"], unique=False)
        batch_op.create_index(
            "ix_trace_lot_edge_input", ["input_lot_id", "output_lot_id"], unique=False
        )
        batch_op.create_index(
            "ix_trace_lot_edge_output", ["output_lot_id", "input_lot_id"], unique=False
        )

    op.create_table(
        "trace_lot_flow",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_pk"], ["trace_event.id"], name=op.f("fk_trace_lot_flow_event_pk_trace_event")
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["trace_lot.id"], name=op.f("fk_trace_lot_flow_lot_id_trace_lot")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_lot_flow")),
    )
    with op.batch_alter_table("trace_lot_flow", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_lot_flow_event_pk"), ["event_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_trace_lot_flow_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "trace_lot_parcel",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("dkbm", sa.String(length=19), nullable=False),
        sa.Column("harvested_at", UTCDateTime(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("operator_cooperative_id", sa.Integer(), nullable=True),
        sa.Column("area_mu", sa.Double(), nullable=True),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_pk"], ["trace_event.id"], name=op.f("fk_trace_lot_parcel_event_pk_trace_event")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
            name=op.f("fk_trace_lot_parcel_household_id_household"),
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["trace_lot.id"], name=op.f("fk_trace_lot_parcel_lot_id_trace_lot")
        ),
        sa.ForeignKeyConstraint(
            ["operator_cooperative_id"],
            ["cooperative.id"],
            name=op.f("fk_trace_lot_parcel_operator_cooperative_id_cooperative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_lot_parcel")),
    )
    with op.batch_alter_table("trace_lot_parcel", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trace_lot_parcel_dkbm_time", ["dkbm", "harvested_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_trace_lot_parcel_event_pk"), ["event_pk"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_lot_parcel_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "trace_unit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=False),
        sa.Column("serial", sa.String(length=20), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("status_event_pk", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_pk"], ["trace_event.id"], name=op.f("fk_trace_unit_event_pk_trace_event")
        ),
        sa.ForeignKeyConstraint(
            ["status_event_pk"],
            ["trace_event.id"],
            name=op.f("fk_trace_unit_status_event_pk_trace_event"),
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["trace_lot.id"], name=op.f("fk_trace_unit_lot_id_trace_lot")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_unit")),
        sa.UniqueConstraint("gtin", "serial", name=op.f("uq_trace_unit_gtin_serial")),
    )
    with op.batch_alter_table("trace_unit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_unit_event_pk"), ["event_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_trace_unit_lot_id"), ["lot_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trace_unit_status_event_pk"), ["status_event_pk"], unique=False
        )

    op.create_table(
        "trace_containment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parent_epc", sa.String(length=300), nullable=False),
        sa.Column("unit_id", sa.BigInteger(), nullable=False),
        sa.Column("event_pk", sa.BigInteger(), nullable=False),
        sa.Column("voided", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_pk"], ["trace_event.id"], name=op.f("fk_trace_containment_event_pk_trace_event")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["trace_unit.id"], name=op.f("fk_trace_containment_unit_id_trace_unit")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_containment")),
    )
    with op.batch_alter_table("trace_containment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trace_containment_event_pk"), ["event_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_trace_containment_parent_epc"), ["parent_epc"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_containment_unit_id"), ["unit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trace_containment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_containment_unit_id"))
        batch_op.drop_index(batch_op.f("ix_trace_containment_parent_epc"))
        batch_op.drop_index(batch_op.f("ix_trace_containment_event_pk"))

    op.drop_table("trace_containment")
    with op.batch_alter_table("trace_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_unit_status_event_pk"))
        batch_op.drop_index(batch_op.f("ix_trace_unit_lot_id"))
        batch_op.drop_index(batch_op.f("ix_trace_unit_event_pk"))

    op.drop_table("trace_unit")
    with op.batch_alter_table("trace_lot_parcel", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_lot_parcel_lot_id"))
        batch_op.drop_index(batch_op.f("ix_trace_lot_parcel_event_pk"))
        batch_op.drop_index("ix_trace_lot_parcel_dkbm_time")

    op.drop_table("trace_lot_parcel")
    with op.batch_alter_table("trace_lot_flow", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_lot_flow_lot_id"))
        batch_op.drop_index(batch_op.f("ix_trace_lot_flow_event_pk"))

    op.drop_table("trace_lot_flow")
    with op.batch_alter_table("trace_lot_edge", schema=None) as batch_op:
        batch_op.drop_index("ix_trace_lot_edge_output")
        batch_op.drop_index("ix_trace_lot_edge_input")
        batch_op.drop_index(batch_op.f("ix_trace_lot_edge_event_pk"))

    op.drop_table("trace_lot_edge")
    with op.batch_alter_table("trace_event_parcel", schema=None) as batch_op:
        batch_op.drop_index("ix_trace_event_parcel_dkbm_time")

    op.drop_table("trace_event_parcel")
    with op.batch_alter_table("trace_event_lot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_event_lot_lot_id"))

    op.drop_table("trace_event_lot")
    with op.batch_alter_table("trace_event_epc", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_event_epc_epc"))

    op.drop_table("trace_event_epc")
    with op.batch_alter_table("trace_certificate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_certificate_lot_id"))
        batch_op.drop_index(batch_op.f("ix_trace_certificate_cooperative_id"))

    op.drop_table("trace_certificate")
    with op.batch_alter_table("trace_lot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_lot_product_id"))
        batch_op.drop_index(batch_op.f("ix_trace_lot_cooperative_id"))

    op.drop_table("trace_lot")
    with op.batch_alter_table("trace_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_event_read_point"))
        batch_op.drop_index(batch_op.f("ix_trace_event_household_id"))
        batch_op.drop_index(batch_op.f("ix_trace_event_event_time"))
        batch_op.drop_index(batch_op.f("ix_trace_event_event_id"))
        batch_op.drop_index(batch_op.f("ix_trace_event_declares_pk"))
        batch_op.drop_index("ix_trace_event_cooperative_time")
        batch_op.drop_index(batch_op.f("ix_trace_event_capture_id"))
        batch_op.drop_index("ix_trace_event_biz_step_time")
        batch_op.drop_index(batch_op.f("ix_trace_event_biz_location"))

    op.drop_table("trace_event")
    with op.batch_alter_table("trace_product", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_product_cooperative_id"))

    op.drop_table("trace_product")
    op.drop_table("trace_capture")
