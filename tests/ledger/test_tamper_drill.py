"""The tamper drill (scripts/drills/tamper.py) against a real deployment and `dv serve`.

It runs once, on PostgreSQL when the suite has it (where the PostGIS column is one more case),
else on SQLite (where an entry's bytes stored as text is one more): rows edited in the database
are named by `dv ledger verify` and by the records' own check routes, and an old checkpoint
served as current is caught by the audit and by `dv ledger monitor`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import POSTGRES_URL

DRILL = Path(__file__).resolve().parents[2] / "scripts" / "drills" / "tamper.py"


def test_every_tamper_case_is_detected() -> None:
    args = ["--postgres", POSTGRES_URL] if POSTGRES_URL else []
    result = subprocess.run(
        [sys.executable, str(DRILL), *args], capture_output=True, text=True, timeout=1200
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert figures["untouched_audit_ok"] is True
    detected = {case["case"] for case in figures["cases"] if case["detected"]}
    expected = {
        "entry_bytes",
        "sealed_reading",
        "parcel_geometry",
        "checkpoint_replay_audit",
        "checkpoint_replay_monitor",
        "checkpoint_replay_first_look",
        "certificate_origin",
        "product_name",
        "lot_quantity",
        "parcel_land_use",
        "parcel_area",
        "certificate_check_route",
        "lot_check_route",
        "parcel_check_route",
    }
    if POSTGRES_URL:
        expected.add("parcel_geom")
    else:
        expected.add("entry_column_type")
    assert detected == expected
    assert f"detected {len(expected)} of {len(expected)}" in result.stdout
