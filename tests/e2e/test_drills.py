"""Short forms of the fault drills in scripts/drills/, run against real `dv serve` processes.

They start servers, brokers and a PostgreSQL cluster of their own and take a minute or more
each, so they run under CI=true (where nothing they need may be missing: a missing piece fails
the test) or with DV_DRILLS=1, and are skipped otherwise. They share one xdist group: one drill
at a time, whatever the number of test processes, since each wants both cores for its load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, POSTGRES_URL

DRILLS = Path(__file__).resolve().parents[2] / "scripts" / "drills"
PG_BIN = Path(os.environ.get("DV_DRILL_PG_BIN", "/usr/lib/postgresql/15/bin"))
SKIPPED = 2  # a drill's exit code when this machine cannot stage it (disk_full.py: no mount)

pytestmark = [
    pytest.mark.xdist_group("drills"),
    pytest.mark.skipif(
        not (IN_CI or os.environ.get("DV_DRILLS") == "1"),
        reason="fault drills run under CI=true or with DV_DRILLS=1 (each starts its own servers "
        "for a minute or more; or run scripts/drills/*.py alone)",
    ),
]


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but the drill cannot run: {reason}")
    pytest.skip(reason)


def run_drill(name: str, *args: str) -> dict[str, Any]:
    """Run a drill; its figures (the last line of its output), failing with its output."""
    result = subprocess.run(
        [sys.executable, str(DRILLS / name), *args],
        capture_output=True,
        text=True,
        timeout=1200,  # two busy cores: set-up alone can take a couple of minutes
    )
    output = result.stdout[-4000:] + result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    try:
        figures: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(f"{name} ended without its figures (exit {result.returncode}):\n{output}")
    if result.returncode == SKIPPED and "skipped" in figures:
        unavailable(f"{name}: {figures['skipped']}")
    assert result.returncode == 0, output
    return figures


def test_several_workers_on_postgres_write_and_read_at_once() -> None:
    if not POSTGRES_URL:  # under CI=true conftest refuses to run without it
        pytest.skip("needs PostgreSQL: set DV_TEST_POSTGRES_URL")
    figures = run_drill(
        "multiworker.py", "--postgres", POSTGRES_URL, "--workers", "3", "--seconds", "6"
    )
    assert figures["errors_5xx"] == 0
    assert figures["ledger_gapless"] is True and figures["ledger_audit_ok"] is True
    assert figures["acknowledged_missing_from_ledger"] == 0
    assert figures["readings_stored"] == figures["readings_accepted"]
    assert figures["events_acknowledged"] and figures["readings_sent"]


def test_sigkilled_api_and_mqtt_worker_lose_no_acknowledged_write() -> None:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        unavailable("no mosquitto binary (apt-get install mosquitto)")
    figures = run_drill("crash.py", "--kills", "2", "--seconds", "3")
    assert figures["api_kills"] == 2 and figures["mqtt_kills"] == 2
    assert figures["events_acknowledged"] > 0 and figures["events_acknowledged_missing"] == 0
    assert figures["readings_acknowledged_missing"] == 0 and figures["partial_batches"] == 0
    assert figures["readings_exactly_once"] is True and figures["api_errors_5xx"] == 0
    assert figures["mqtt_messages_acknowledged"] > 0
    assert figures["mqtt_readings_missing"] == 0 and figures["mqtt_readings_stray"] == 0
    assert figures["ledger_audit_ok"] is True and figures["sqlite_integrity"] == "ok"


def test_postgres_restart_is_answered_503_and_recovered_from_without_restarting_dv() -> None:
    if not (PG_BIN / "initdb").exists():
        unavailable(f"no PostgreSQL server binaries in {PG_BIN} (apt-get install postgresql-15)")
    figures = run_drill(
        "pg_restart.py", "--workers", "2", "--seconds", "3", "--down", "3", "--recover", "15"
    )
    assert figures["status_503"] > 0
    assert figures["answers_not_2xx_or_503_problem"] == 0 and figures["unanswered"] == 0
    assert figures["dv_serve_kept_running"] is True
    assert figures["worker_replaced_during_outage"] is True
    assert figures["failures_after_recovery_bound"] == 0
    assert figures["events_acknowledged_missing"] == 0
    assert figures["readings_acknowledged_missing"] == 0
    assert figures["ledger_audit_ok"] is True


def test_full_disk_refuses_writes_with_507_keeps_reads_and_recovers() -> None:
    figures = run_drill("disk_full.py", "--seconds", "2", "--full-seconds", "3", "--recover", "15")
    assert figures["status_507"] > 0 and figures["bad_write_answers"] == 0
    assert figures["reads_while_full"] > 0 and figures["reads_while_full_failed"] == 0
    assert figures["first_write_after_freeing_seconds"] is not None
    assert figures["sqlite_integrity"] == "ok" and figures["ledger_audit_ok"] is True
    assert figures["events_acknowledged_missing"] == 0
    assert figures["readings_acknowledged_missing"] == 0
