"""The import contract (pyproject.toml, run by ./scripts/test) holds, and would catch each wrong
arrow the layers once had: the log importing its tenants, access importing regions, the shared
request kit importing access or the ledger, and a circle inside the net.

Each case copies the source tree, adds one import line, and runs lint-imports on the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "digital_village"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (module file, the line added, what the contract must say)
WRONG_ARROWS = {
    "the log audit imports the net": (
        "ledger/audit.py",
        "from digital_village.iot import seal",
        "digital_village.ledger is not allowed to import digital_village.iot",
    ),
    "the log audit imports the map": (
        "ledger/audit.py",
        "from digital_village.parcels.models import Parcel",
        "digital_village.ledger is not allowed to import digital_village.parcels",
    ),
    "access resolves cooperatives itself": (
        "auth/service.py",
        "from digital_village.regions import service as regions",
        "digital_village.auth is not allowed to import digital_village.regions",
    ),
    "the shared request kit imports access": (
        "api/deps.py",
        "from digital_village.auth import service",
        "digital_village.api is not allowed to import digital_village.auth",
    ),
    "the shared request kit imports the ledger": (
        "api/deps.py",
        "from digital_village.ledger.log import Ledger",
        "digital_village.api is not allowed to import digital_village.ledger",
    ),
    "alerts and ingest import each other": (
        "iot/alerts.py",
        "from digital_village.iot.ingest import DeviceContext",
        "No cycles are allowed in digital_village.iot",
    ),
}


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contract over the package found in ``tree``/src."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed (pip install -e '.[test]')")
    tree = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    shutil.copytree(
        PACKAGE, tree / "src" / "digital_village", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tree


def test_the_tree_keeps_the_contract(pristine: Path) -> None:
    result = lint(pristine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "one-way layers KEPT" in result.stdout
    assert "no circles between the modules of any package KEPT" in result.stdout


@pytest.mark.parametrize("arrow", sorted(WRONG_ARROWS))
def test_the_contract_catches_a_wrong_arrow(pristine: Path, tmp_path: Path, arrow: str) -> None:
    module, line, verdict = WRONG_ARROWS[arrow]
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    target = tree / "src" / "digital_village" / module
    target.write_text(target.read_text("utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = lint(tree)
    assert result.returncode != 0, f"{arrow}: the contract was kept\n{result.stdout}"
    assert verdict in result.stdout, result.stdout
