"""The offline verifier runs with the standard library and `cryptography` alone."""

from __future__ import annotations

import json
import subprocess
import sys

# Modules loaded before the import (site hooks, __main__) are the interpreter's, not ours;
# _openssl and _cffi_backend are cryptography's own compiled bindings.
PROBE = """
import json, sys
before = {m.split(".")[0] for m in sys.modules}
import digital_village.ledger.verify
allowed = set(sys.stdlib_module_names) | before | {
    "digital_village", "cryptography", "_cffi_backend", "_openssl", "_rust"
}
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} - allowed)))
"""


def test_verifier_imports_nothing_else() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_verifier_loads_no_other_project_module() -> None:
    probe = (
        "import sys, json; import digital_village.ledger.verify; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('digital_village'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert set(json.loads(result.stdout)) <= {
        "digital_village",
        "digital_village.ledger",
        "digital_village.ledger.cosignature",
        "digital_village.ledger.merkle",
        "digital_village.ledger.note",
        "digital_village.ledger.proof",
        "digital_village.ledger.verify",
    }
