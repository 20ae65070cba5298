"""Short forms of the drills in scripts/drills/, run against real `dv serve` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

DRILLS = Path(__file__).resolve().parents[2] / "scripts" / "drills"


def run_drill(name: str, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(DRILLS / name), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    figures: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return figures


def test_several_workers_on_postgres_write_and_read_at_once() -> None:
    if not POSTGRES_URL:
        pytest.skip("needs PostgreSQL: set DV_TEST_POSTGRES_URL")
    if os.environ.get("DV_DRILLS") != "1":
        # Three server processes plus load need the machine to themselves; on a busy shared
        # machine the start-up alone can exceed the drill's limits. Opt in explicitly.
        pytest.skip("drills run with DV_DRILLS=1 (scripts/drills/multiworker.py runs it alone)")
    figures = run_drill(
        "multiworker.py", "--postgres", POSTGRES_URL, "--workers", "3", "--seconds", "6"
    )
    assert figures["errors_5xx"] == 0
    assert figures["ledger_gapless"] is True and figures["ledger_audit_ok"] is True
    assert figures["acknowledged_missing_from_ledger"] == 0
    assert figures["readings_stored"] == figures["readings_accepted"]
    assert figures["events_acknowledged"] and figures["readings_sent"]
