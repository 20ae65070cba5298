"""Tests that need GS1's EPCIS JSON Schema (kept in ../shared) say so in the test run's header
and summary when it is missing, as the PostgreSQL tests do, instead of skipping silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(schema: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DV_TEST_GS1_SCHEMA": schema}
    env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/trace/test_epcis.py", "-n", "0", "-rs",
         "-k", "schema", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_a_missing_schema_is_named_in_the_header_and_the_summary(tmp_path: Path) -> None:
    missing = tmp_path / "EPCIS-JSON-Schema.json"
    result = run(str(missing))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"GS1 EPCIS JSON Schema: MISSING at {missing}" in output
    assert f"tests SKIPPED: GS1's EPCIS 2.0 JSON Schema not found at {missing}" in output
    assert " skipped" in output and "failed" not in output
