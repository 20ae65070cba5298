"""The long fuzz campaign: schemathesis against every operation of the app's own OpenAPI.

    python scripts/fuzz_api.py                 # 500 examples per operation and caller
    python scripts/fuzz_api.py --examples 2000

It runs tests/fuzz (anonymous and admin callers, on SQLite) with more examples than the suite's
50, counts the cases each operation was sent, and fails on any 5xx or any answer that breaks
its own documented schema. tests/fuzz also sends what generated cases do not: invalid Unicode in
JSON (lone surrogate escapes, bytes that are not UTF-8) to every write route, strings of any
kind and length (the same number of examples), and CSV telemetry's edge cases.
The last line printed is one JSON object:
{"operations", "callers", "cases", "failed", "examples_per_operation", "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="examples per operation")
    parser.add_argument("--processes", default="auto", help="pytest-xdist processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dv-fuzz-") as folder:
        report = Path(folder) / "cases.jsonl"
        junit = Path(folder) / "junit.xml"
        env = {
            **os.environ,
            "DV_FUZZ_EXAMPLES": str(args.examples),
            "DV_FUZZ_REPORT": str(report),
            "DV_TEST_POSTGRES_URL": "",
        }
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/fuzz",
                "-q",
                "-p",
                "no:cacheprovider",
                "-n",
                args.processes,
                f"--junitxml={junit}",
            ],
            cwd=REPO,
            env=env,
            check=False,
        )
        seconds = time.monotonic() - started
        lines = report.read_text("utf-8").splitlines() if report.exists() else []
    runs = [json.loads(line) for line in lines]
    figures = {
        "operations": len({run["operation"] for run in runs}),
        "callers": sorted({run["role"] for run in runs}),
        "cases": sum(run["cases"] for run in runs),
        "failed": result.returncode != 0,
        "examples_per_operation": args.examples,
        "seconds": round(seconds, 1),
    }
    print(json.dumps(figures))
    return 0 if result.returncode == 0 and runs else 1


if __name__ == "__main__":
    sys.exit(main())
